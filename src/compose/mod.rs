//! Compose files as a source of desired state (issue 14, in progress): the translation from a
//! Compose project to dockhand objects, shared by the compose source and `dockhand convert`.
//! So far: variable interpolation, as Compose does it.

pub mod interpolate;
