//! What a2md takes on its command line: one definition for the parser,
//! `--help`, the man page and the shell completions (`a2md generate`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub const ABOUT: &str = "Manage the certificates of mod_md (in Rust, or the C module's store): \
list them, renew or revoke now, move accounts and stores.";

pub const AFTER: &str = "\
The store is found without -d: the MDStoreDir of the server's configuration \
(/etc/apache2), else /etc/apache2/md.

Commands that act on a store print one JSON object (\"status\": 0 on success).

Exit codes: 0 done, 1 failed (the JSON says why), 2 bad usage.";

#[derive(Parser, Debug)]
#[command(name = "a2md", version = version(), about = ABOUT, after_help = AFTER)]
pub struct Cli {
    /// The store directory (MDStoreDir); default: the server's, else /etc/apache2/md
    #[arg(short = 'd', long = "dir", global = true, value_name = "STORE")]
    pub store: Option<PathBuf>,
    /// The ACME CA's directory URL (drive, account-import)
    #[arg(short = 'a', long = "acme", global = true, value_name = "CA_URL")]
    pub ca: Option<String>,
    /// CA certificates to verify the ACME CA with
    #[arg(short = 'C', long = "cafile", global = true, value_name = "CAFILE")]
    pub cafile: Option<String>,
    /// HTTP(S) proxy for the ACME CA
    #[arg(short = 'p', long = "proxy", global = true, value_name = "PROXY")]
    pub proxy: Option<String>,
    /// CA certificates to verify the proxy with
    #[arg(short = 'P', long = "proxy-cafile", global = true, value_name = "FILE")]
    pub proxy_cafile: Option<String>,
    #[command(subcommand)]
    pub cmd: Command,
}

pub(crate) fn version() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (mod_md in Rust ",
        env!("CARGO_PKG_VERSION"),
        ", compatible with mod_md 2.6.10)"
    )
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Every managed domain of the store: names, key types, valid until, renewal, state
    List {
        /// One JSON object per MD (md-status's fields where they exist)
        #[arg(long)]
        json: bool,
    },
    /// One managed domain in detail
    Status {
        /// The MD (its first domain name, as md-status names it)
        md: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask the running httpd to renew an MD now, whatever its renewal window says
    Renew {
        /// The MD (its first domain name)
        md: String,
        /// Why, for the log and md-status
        #[arg(long)]
        reason: Option<String>,
        /// Wait until the new certificate is served (or the renewal failed), at most SECS
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "600")]
        wait: Option<u64>,
    },
    /// Revoke an MD's certificates at its CA, then renew it
    Revoke {
        /// The MD (its first domain name)
        md: String,
        /// RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, ... or its number
        reason: Option<String>,
    },
    /// Obtain a certificate into the store now, without httpd (as the C module's a2md drive)
    Drive(DriveArgs),
    /// Give a stored ACME account a new key at its CA and in the store
    AccountRollover {
        /// The account's id (as in accounts/)
        id: String,
    },
    /// Write a stored account's key to a file (for account-import elsewhere)
    AccountExport {
        /// The account's id (as in accounts/)
        id: String,
        /// Where to write the key (unencrypted PEM, 0600, never over a file)
        keyfile: PathBuf,
    },
    /// Store an existing ACME account (needs -a CA_URL)
    AccountImport {
        /// The account's key (unencrypted PEM)
        keyfile: PathBuf,
        /// The account's URL; without it the CA names the key's account
        #[arg(long)]
        url: Option<String>,
        /// httpd's User, who gets the key (default: the owner of staging/)
        #[arg(long)]
        user: Option<String>,
    },
    /// Copy the file store (-d) into etcd
    StoreExport(EtcdArgs),
    /// Copy the store in etcd into the directory -d (the C module's file store)
    StoreImport(EtcdArgs),
    /// Print the man page or a shell completion script
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        what: Generated,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Generated {
    Man,
    Bash,
    Zsh,
}

#[derive(Args, Debug)]
pub struct DriveArgs {
    /// The MD's domain names (the first names it)
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Challenge types to use, in order (http-01,tls-alpn-01,dns-01)
    #[arg(long, value_delimiter = ',')]
    pub challenges: Vec<String>,
    /// The dns-01 setup/teardown command
    #[arg(long)]
    pub dns01: Option<String>,
    /// How the dns-01 command is called (1 or 2)
    #[arg(long = "dns01-version", default_value_t = 1)]
    pub dns01_version: u8,
    /// The account's contact address
    #[arg(long)]
    pub contact: Option<String>,
    /// "accepted", or the URL of the CA's terms of service
    #[arg(long)]
    pub agreement: Option<String>,
    /// Key types, as MDPrivateKeys takes them ("RSA 2048 secp384r1")
    #[arg(long)]
    pub keys: Option<String>,
    /// External account binding: key id and HMAC key
    #[arg(long, num_args = 2, value_names = ["KID", "HMAC"])]
    pub eab: Vec<String>,
    /// Ask for the must-staple extension
    #[arg(long)]
    pub must_staple: bool,
    /// The ACME profile
    #[arg(long)]
    pub profile: Option<String>,
    /// Fail when the CA does not offer the profile
    #[arg(long)]
    pub profile_mandatory: bool,
    /// The stored account to use
    #[arg(long)]
    pub account: Option<String>,
}

#[derive(Args, Debug)]
pub struct EtcdArgs {
    /// The etcd members: https://host:port[,https://host:port...]
    pub endpoints: String,
    /// The key that seals private keys in etcd (MDStoreEtcdSealKey)
    #[arg(long = "seal-key", value_name = "FILE")]
    pub seal_key: PathBuf,
    /// The store's key prefix in etcd
    #[arg(long, default_value = "/mod_md/")]
    pub prefix: String,
    /// CA certificates to verify etcd with
    #[arg(long = "etcd-ca", value_name = "FILE")]
    pub etcd_ca: Option<String>,
    /// Client certificate and key for etcd
    #[arg(long = "etcd-cert", num_args = 2, value_names = ["CERT", "KEY"])]
    pub etcd_cert: Vec<String>,
    /// User and password for etcd
    #[arg(long = "etcd-user", num_args = 2, value_names = ["USER", "PASSWORD"])]
    pub etcd_user: Vec<String>,
}
