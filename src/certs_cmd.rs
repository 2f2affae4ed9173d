//! `mqgate certs ...`: the command line of the small CA (the work is done by mqgate-certs).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
use mqgate_certs::{
    Ca, CertsDir, CertsError, CsrRequest, InitOptions, IssueRequest, Issued, KeyType,
    OffsetDateTime, Profile, Reason, DEFAULT_CA_VALIDITY_DAYS, DEFAULT_CRL_DAYS,
    DEFAULT_VALIDITY_DAYS,
};

/// Default certs directory, next to the gateway's other state.
const DEFAULT_DIR: &str = "./mqgate-data/certs";

/// Arguments of `mqgate certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// The certs directory: CA, inventory, CRL and issued certificates.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// The CA's commands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the CA (ca.pem, and ca.key with mode 0600).
    Init {
        /// The CA's common name.
        #[arg(long, default_value = "mqgate CA")]
        name: String,
        /// Key algorithm: ecdsa-p256 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// Lifetime of the CA certificate.
        #[arg(long, default_value_t = DEFAULT_CA_VALIDITY_DAYS)]
        validity_days: u32,
        /// Replace an existing CA (its files are moved to DIR/replaced-<time>/).
        #[arg(long)]
        force: bool,
    },
    /// Issue a server certificate (serverAuth) with DNS and IP subject alternative names.
    IssueServer {
        /// DNS name to certify (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// IP address to certify (repeatable).
        #[arg(long = "ip", value_name = "ADDR")]
        ips: Vec<IpAddr>,
        /// Subject CN and file name [default: the first --dns, else the first --ip].
        #[arg(long)]
        name: Option<String>,
        /// Key algorithm: ecdsa-p256 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// Lifetime in days.
        #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS)]
        validity_days: u32,
        /// Issue even if a valid certificate already has this subject.
        #[arg(long)]
        force: bool,
    },
    /// Issue a device certificate (clientAuth, CN=ID) with a new key.
    IssueDevice {
        /// Device id: becomes the subject CN (and the MQTT identity).
        id: String,
        /// Key algorithm: ecdsa-p256 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// Lifetime in days.
        #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS)]
        validity_days: u32,
        /// Issue even if a valid certificate already has this subject.
        #[arg(long)]
        force: bool,
    },
    /// Sign a CSR (PEM or DER) made on the device, so its key never leaves it. Only the
    /// CSR's CN and public key are used; its SANs are dropped unless --keep-san.
    SignCsr {
        /// The certificate signing request.
        file: PathBuf,
        /// What the certificate is for.
        #[arg(long, value_enum, default_value = "device")]
        profile: ProfileArg,
        /// Lifetime in days.
        #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS)]
        validity_days: u32,
        /// Sign even if a valid certificate already has this subject.
        #[arg(long)]
        force: bool,
        /// Copy the CSR's subject alternative names into the certificate (default: drop
        /// them, keep only the CN). DANGEROUS: listeners with identity = "san-uri",
        /// "san-dns" or "san-email" use a SAN as the MQTT username, so the requester would
        /// pick its own identity (a SAN of URI:spiffe://site/admin logs in as admin).
        /// Check the SANs first: `openssl req -noout -text -in FILE`.
        #[arg(long)]
        keep_san: bool,
    },
    /// Show the inventory; certificates expiring within 30 days are marked with `!`.
    List,
    /// Revoke a certificate (by serial) or all certificates of a subject, and rewrite crl.pem.
    Revoke {
        /// Device id, server name, or serial number (hex).
        target: String,
        /// unspecified, key-compromise, ca-compromise, affiliation-changed, superseded,
        /// cessation-of-operation or privilege-withdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: Reason,
    },
    /// Write crl.pem, signed by the CA.
    Crl {
        /// Days until the CRL's next-update.
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
        next_update_days: u32,
    },
    /// Issue a fresh certificate for the same subject; the old one stays valid until it
    /// expires or is revoked.
    Renew {
        /// Device id, server name, or serial number (hex).
        target: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS)]
        validity_days: u32,
        /// Generate a new key instead of certifying the current public key again.
        #[arg(long)]
        new_key: bool,
        /// Algorithm of the new key (with --new-key).
        #[arg(long, default_value = "ecdsa-p256", requires = "new_key")]
        key_type: KeyType,
    },
}

/// Certificate profile on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    /// clientAuth: a device.
    Device,
    /// serverAuth: a TLS server.
    Server,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Device => Profile::Device,
            ProfileArg::Server => Profile::Server,
        }
    }
}

/// Runs one `mqgate certs` command. Errors come back as a one-line message.
pub fn run(args: CertsArgs) -> anyhow::Result<ExitCode> {
    // CertsError's message already includes its cause: flatten it to one line.
    execute(args).map_err(|e| anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn execute(args: CertsArgs) -> Result<(), CertsError> {
    let dir = CertsDir::new(args.dir);
    let now = OffsetDateTime::now_utc();
    match args.command {
        CertsCommand::Init {
            name,
            key_type,
            validity_days,
            force,
        } => {
            let opts = InitOptions {
                name,
                key_type,
                validity_days,
                force,
            };
            let info = mqgate_certs::init(&dir, &opts, now)?;
            println!(
                "created CA {:?} ({key_type}), valid until {}",
                info.subject,
                info.not_after.date()
            );
            println!("  certificate: {}", info.cert.display());
            println!("  key (0600):  {}", info.key.display());
        }
        CertsCommand::IssueServer {
            dns,
            ips,
            name,
            key_type,
            validity_days,
            force,
        } => {
            let ca = open(dir)?;
            let name = name
                .or_else(|| dns.first().cloned())
                .or_else(|| ips.first().map(IpAddr::to_string))
                .ok_or(CertsError::NoServerNames)?;
            let req = IssueRequest {
                profile: Profile::Server,
                name,
                dns,
                ips,
                key_type,
                validity_days,
                force,
            };
            print_issued(&ca.issue(&req, now)?);
        }
        CertsCommand::IssueDevice {
            id,
            key_type,
            validity_days,
            force,
        } => {
            let ca = open(dir)?;
            let req = IssueRequest {
                profile: Profile::Device,
                name: id,
                dns: Vec::new(),
                ips: Vec::new(),
                key_type,
                validity_days,
                force,
            };
            print_issued(&ca.issue(&req, now)?);
        }
        CertsCommand::SignCsr {
            file,
            profile,
            validity_days,
            force,
            keep_san,
        } => {
            let ca = open(dir)?;
            let req = CsrRequest {
                csr: file,
                profile: profile.into(),
                validity_days,
                force,
                keep_san,
            };
            let issued = ca.sign_csr_request(&req, now)?;
            if !issued.dropped_sans.is_empty() {
                eprintln!(
                    "warning: dropped the CSR's subject alternative names (not certified; \
                     --keep-san copies them): {}",
                    issued.dropped_sans.join(", ")
                );
            }
            print_issued(&issued);
        }
        CertsCommand::List => {
            let ca = open(dir)?;
            let inv = ca.inventory()?;
            print!("{}", mqgate_certs::render_list(ca.info(), &inv, now));
        }
        CertsCommand::Revoke { target, reason } => {
            let ca = open(dir)?;
            let (revoked, crl) = ca.revoke(&target, reason, now)?;
            for r in &revoked {
                println!("revoked {} ({}), reason {reason}", r.serial, r.subject);
            }
            println!(
                "wrote {} (CRL #{}, {} revoked); reload the TLS listener to apply it",
                crl.path.display(),
                crl.number,
                crl.revoked
            );
        }
        CertsCommand::Crl { next_update_days } => {
            let ca = open(dir)?;
            let crl = ca.write_crl(next_update_days, now)?;
            println!(
                "wrote {} (CRL #{}, {} revoked, next update {})",
                crl.path.display(),
                crl.number,
                crl.revoked,
                crl.next_update.date()
            );
        }
        CertsCommand::Renew {
            target,
            validity_days,
            new_key,
            key_type,
        } => {
            let ca = open(dir)?;
            let issued = ca.renew(&target, validity_days, new_key.then_some(key_type), now)?;
            print_issued(&issued);
        }
    }
    Ok(())
}

/// Opens the CA and prints its permission warnings on stderr.
fn open(dir: CertsDir) -> Result<Ca, CertsError> {
    let ca = Ca::open(dir)?;
    for w in ca.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(ca)
}

fn print_issued(issued: &Issued) {
    let r = &issued.record;
    println!(
        "issued {} certificate for {:?}: serial {}, valid until {}",
        r.profile,
        r.subject,
        r.serial,
        r.not_after.date()
    );
    println!("  certificate: {}", issued.cert.display());
    if let Some(key) = &issued.key {
        println!("  key (0600):  {}", key.display());
    }
    println!("  chain:       {}", issued.chain.display());
    for san in &issued.sans {
        println!("  signed SAN:  {san}");
    }
}
