//! What each kind means to the engine: the containers and networks an object asks for, and how
//! its engine-side state is read back. The manifest says what a user wants; these files say how
//! the engine is made to hold it, one kind to a file.

pub mod database;
pub mod network;
pub mod server;
