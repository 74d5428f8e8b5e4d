//! `dockhand secret encrypt`: a value in the armored age form a Secret's `encrypted:` holds, so
//! it can be committed; `dockhand secret keygen`: the controller's identity file and the public
//! key to encrypt to. Nothing here touches the engine or the state file.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::age::{Identity, Recipient};

#[derive(Args, Debug)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Print a value encrypted to the recipients, ready for a Secret's `encrypted: |`.
    Encrypt {
        /// A public key (age1…) that may decrypt it (repeatable: the controller's, a colleague's).
        #[arg(short, long = "recipient", required = true)]
        recipients: Vec<String>,
        /// The file holding the value; standard input when omitted or `-`.
        file: Option<PathBuf>,
    },
    /// Write a new identity file (mode 0600, never overwritten) and print its public key.
    Keygen {
        /// Where to write it; the controller reads it with --age-identity FILE.
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub async fn run(args: SecretArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SecretCommand::Encrypt { recipients, file } => encrypt(&recipients, file),
        SecretCommand::Keygen { output } => keygen(&output),
    }
}

fn encrypt(recipients: &[String], file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let recipients = recipients
        .iter()
        .map(|r| Recipient::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut value = zeroize::Zeroizing::new(Vec::new());
    match file.filter(|f| f.as_os_str() != "-") {
        Some(f) => {
            *value = std::fs::read(&f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        }
        None => {
            std::io::stdin().read_to_end(&mut value)?;
        }
    }
    print!("{}", crate::age::encrypt_armored(&value, &recipients)?);
    Ok(ExitCode::SUCCESS)
}

fn keygen(output: &std::path::Path) -> anyhow::Result<ExitCode> {
    let id = Identity::generate()?;
    let recipient = id.recipient();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?;
    writeln!(f, "# public key: {recipient}")?;
    writeln!(f, "{}", *id.to_secret_string())?;
    println!("{recipient}");
    Ok(ExitCode::SUCCESS)
}
