//! The command line, declared once with clap; completions and the man page come from it.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Read and write data on the CTAO-CH data center storage.
#[derive(Debug, Parser)]
#[command(name = "cta-data", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Profile to use (cta, cta-dev, platform, grid, local, or one of your config file).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Use the dev instance: the same as --profile cta-dev.
    #[arg(short = 'd', long, global = true, conflicts_with = "profile")]
    pub dev: bool,
    /// Read this config file instead of $XDG_CONFIG_HOME/cta-data/config.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override the profile's URL (the door or the service).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Extra trusted CA certificates (PEM bundle) for this run.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Read the bearer token from this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Do not verify the server's TLS certificate (dangerous; warns every time).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Retries of a request after a temporary failure (network, timeout, 408/429/5xx),
    /// with backoff; a broken download resumes where it stopped.
    #[arg(long, global = true, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// More output: -v per-file lines and info logs, -vv debug, -vvv trace.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Machine-readable output (JSON) on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a directory (or show a file).
    #[command(visible_alias = "ls")]
    List {
        /// Remote path; the root when left out.
        #[arg(default_value = "/")]
        path: String,
        /// Long format: type, size, modification time with its offset (and tape locality
        /// when known).
        #[arg(short, long)]
        long: bool,
        /// Descend into subdirectories.
        #[arg(short, long)]
        recursive: bool,
        /// Do not sort: print entries in the server's order as they arrive (for directories
        /// of millions: the first line comes at once and memory stays flat).
        #[arg(short = 'U', long)]
        unsorted: bool,
        /// Times in UTC instead of the local time zone (JSON always gives UTC).
        #[arg(long)]
        utc: bool,
    },
    /// Show the metadata of one file or directory.
    ///
    /// With -v, also what the client has learned of the server: its name, whether it gives
    /// ETags and checksums in listings (a file listed without a checksum is asked alone),
    /// and whether create-if-absent is atomic there (only where the server itself refuses
    /// an existing target: dCache).
    Stat {
        /// Remote path.
        path: String,
        /// Times in UTC instead of the local time zone (JSON always gives UTC).
        #[arg(long)]
        utc: bool,
    },
    /// Download a file, or a directory with -r.
    Get {
        /// Remote path.
        remote: String,
        /// Local target; the remote name in the current directory when left out. An
        /// existing directory or a path ending in '/' receives the remote name inside it.
        local: Option<PathBuf>,
        /// Download a directory with everything below it.
        #[arg(short, long)]
        recursive: bool,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        streams: StreamArgs,
        // ---- tape (issue 14, tape) ----
        #[command(flatten)]
        stage: StageArgs,
    },
    /// Upload a file, or a directory with -r.
    Put {
        /// Local file or directory.
        local: PathBuf,
        /// Remote target. Ending in '/' (or naming an existing directory) puts the local
        /// name inside it. Missing parent directories are created.
        remote: String,
        /// Upload a directory with everything below it.
        #[arg(short, long)]
        recursive: bool,
        #[command(flatten)]
        transfer: TransferArgs,
    },
    /// Create a directory.
    Mkdir {
        /// Remote path.
        path: String,
        /// Create missing parents too; an existing directory is fine.
        #[arg(short, long)]
        parents: bool,
    },
    /// Delete a file, or a directory with -r.
    Rm {
        /// Remote path.
        path: String,
        /// Delete a directory and everything below it.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Rename or move a file or directory on the storage.
    Mv {
        /// Remote source.
        from: String,
        /// Remote destination.
        to: String,
        /// Replace an existing destination file.
        #[arg(short, long)]
        force: bool,
    },
    /// Write a remote file to standard output.
    Cat {
        /// Remote path.
        path: String,
    },
    // ---- tape verbs (issue 14, tape): stage, release, archiveinfo ----
    /// Bring files from tape to disk (WLCG Tape REST API), or follow a stage request.
    ///
    /// `stage PATH...` makes one stage request and prints its id; `stage status ID` shows
    /// the state of each file; `stage cancel ID [PATH...]` cancels. A file literally named
    /// like a subcommand is given as ./status or with its directory.
    #[command(args_conflicts_with_subcommands = true)]
    Stage {
        /// Follow or cancel a request made earlier.
        #[command(subcommand)]
        action: Option<StageAction>,
        /// Files to stage (directories with -r).
        paths: Vec<String>,
        /// Stage every file below the directories given.
        #[arg(short, long)]
        recursive: bool,
        /// How long the staged files stay pinned on disk (90s, 30m, 12h, 1d); the storage's
        /// default when left out.
        #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
        pin: Option<std::time::Duration>,
        /// Wait until every file is on disk (or failed), with a progress line.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this long (the request goes on).
        #[arg(long, value_name = "DURATION", value_parser = duration_arg, requires = "wait")]
        timeout: Option<std::time::Duration>,
    },
    /// Release files staged by a request (all of its files when no PATH is given): the
    /// storage may drop their disk copies.
    Release {
        /// The stage request's id (printed by `stage`).
        id: String,
        /// Files of that request.
        paths: Vec<String>,
    },
    /// Where files are: on disk, on tape, or both (WLCG Tape REST API).
    Archiveinfo {
        /// Files to ask about.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    // ---- end of tape verbs ----
    // ---- share verbs (issue 14, share) ----
    /// Make a link to a file or directory that works without other credentials (a dCache
    /// macaroon); the link is a secret and goes to stdout only.
    ///
    /// The link is a secret: whoever has it can do what it allows until it expires, and it
    /// cannot be withdrawn before. Send it only over channels you trust; keep it short-lived
    /// (--for) and narrow (--allow, --ip).
    ///
    /// Without --allow a file's link allows download (and reading its metadata), a
    /// directory's link download and list. The link works with any HTTP client
    /// (`curl -L LINK`) and with cta-data itself: `cta-data get LINK [LOCAL]`, `list LINK`,
    /// `stat LINK`, `cat LINK`, or the macaroon alone in a file for --token-file.
    Share {
        /// Remote path (or a share link: a narrower link is made from it).
        path: String,
        /// How long the link works: a number with a unit (30m, 12h, 7d, 1d12h) or an ISO
        /// 8601 duration (PT12H). The door may shorten it to its own maximum.
        #[arg(long = "for", value_name = "DURATION", default_value = "12h")]
        validity: String,
        /// What the link allows, comma-separated: download, list, read_metadata, upload,
        /// delete, manage, update_metadata (read_metadata is always included).
        #[arg(long, value_name = "ACTIVITIES")]
        allow: Option<String>,
        /// Only from this address or network (CIDR, e.g. 192.0.2.0/24); repeatable (any of
        /// them may use it).
        #[arg(long, value_name = "CIDR")]
        ip: Vec<String>,
    },
    // ---- end of share verbs ----
    // ---- copy verbs (issue 14, cp) ----
    /// Copy on the storage, server to server: a WebDAV COPY on one door, an HTTP
    /// third-party copy between two doors (pull, else push), else through this client.
    ///
    /// SRC and DST are paths of the current profile, `PROFILE:PATH` (PROFILE a known
    /// profile name), or full `https://host:port/path` URLs of a door. The mode that ran
    /// is said on stderr (and in `--json`); checksums (adler32) of both sides are compared
    /// at the end, and a destination left by a failed copy is removed.
    Cp {
        /// Source: PATH, PROFILE:PATH or a door's URL.
        from: String,
        /// Destination: PATH, PROFILE:PATH or a door's URL.
        to: String,
        /// Copy a directory with everything below it.
        #[arg(short, long)]
        recursive: bool,
        /// How: auto (same door: COPY; else pull, push, stream in that order), or one
        /// mode only.
        #[arg(long, value_enum, default_value_t = CopyModeArg::Auto)]
        mode: CopyModeArg,
        /// Replace an existing destination file.
        #[arg(short, long)]
        force: bool,
        /// Files copied in parallel with -r (default: the profile's `jobs`, else the
        /// backend's).
        #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: Option<u16>,
    },
    // ---- end of copy verbs ----
    // ---- mount (issue 19) ----
    /// Mount a directory of the storage as a local folder (FUSE), until Ctrl-C, SIGTERM or
    /// `cta-data umount`.
    ///
    /// Read-only unless --write. Prints "mounted REMOTE_DIR at MOUNTPOINT" on stderr once
    /// the mount is ready. Listings are cached for --dir-cache-time (`ls -l` costs one
    /// listing); reads are ranged requests with read-ahead for sequential reads and a block
    /// cache bounded by --cache-max-size. Files are write-once: with --write, new files are
    /// uploaded when closed (an upload failure is the error of `close`), and rewriting an
    /// existing file gives EPERM. Needs /dev/fuse and fusermount3 (Debian package fuse3).
    Mount(MountArgs),
    /// Unmount a `cta-data mount` (fusermount3 -u; detached lazily when busy).
    Umount {
        /// The mountpoint.
        mountpoint: PathBuf,
    },
    // ---- end of mount ----
    /// Inspect the configuration.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Log in to the profile's identity provider (device flow); the session is stored and
    /// refreshed when needed, no daemon.
    #[command(visible_alias = "start-agent")]
    Login {
        /// Read the client secret from standard input (instead of a prompt).
        #[arg(long, conflicts_with = "secret")]
        secret_stdin: bool,
        /// The client secret on the command line (old `start-agent -s`; visible to other
        /// users in `ps`: prefer the prompt or --secret-stdin).
        #[arg(short = 's', long, value_name = "SECRET", hide = true)]
        secret: Option<String>,
        /// Do not draw the QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// Revoke the session at the identity provider and delete it.
    #[command(visible_alias = "stop-agent")]
    Logout,
    /// Print the access token on stdout (refreshed if needed); its validity on stderr.
    PrintToken,
    /// Tokens: where they come from and who they say you are.
    Token {
        /// What to show.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Remove the profile's stored client secret and session.
    ResetConfig,
    /// Grid certificates: inspect a proxy, delegate it to the platform.
    Cert {
        /// What to do.
        #[command(subcommand)]
        action: CertAction,
    },
    /// Old name of `cert upload FILE --key KEY`.
    #[command(hide = true)]
    UploadPersonalCertificate {
        /// The proxy certificate file (PEM: certificate, key, chain).
        file: PathBuf,
        /// The certificate key (cta, lst, arc).
        key: String,
        /// Store it for this user (admins only).
        #[arg(short, long)]
        user: Option<String>,
    },
    /// Old name of `cert upload-shared FILE`.
    #[command(hide = true)]
    UploadSharedCertificate {
        /// The robot certificate file (PEM).
        file: PathBuf,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on standard output, or write every page with --dir.
    Man {
        /// A subcommand whose page to print (e.g. `list`, `config show`); the main page when
        /// left out.
        command: Vec<String>,
        /// Write every page (cta-data.1, cta-data-list.1, ...) into this directory, e.g.
        /// /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR", conflicts_with = "command")]
        dir: Option<PathBuf>,
    },
}

// ---- copy verbs (issue 14, cp) ----
/// How `cp` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CopyModeArg {
    /// Same door: WebDAV COPY; two doors: pull, else push, else stream.
    Auto,
    /// Third-party copy, the destination fetching from the source.
    Pull,
    /// Third-party copy, the source sending to the destination.
    Push,
    /// Through this client: read from the source, write to the destination.
    Stream,
}
// ---- end of copy verbs ----

/// Options of get and put.
#[derive(Debug, Args, Clone)]
pub struct TransferArgs {
    /// Files transferred in parallel (default: the profile's `jobs`, else the backend's).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// Stop at the first failed file instead of going on with the others.
    #[arg(long)]
    pub fail_fast: bool,
    /// Transfer every file, even one whose copy at the destination is identical (same
    /// size and mtime); for put also replace remote files that differ.
    #[arg(short, long)]
    pub force: bool,
    /// Skip every file that already exists at the destination, whatever its content
    /// (--skip-existing is the old name).
    #[arg(long, alias = "skip-existing")]
    pub ignore_existing: bool,
    /// Skip files whose copy at the destination is as new or newer.
    #[arg(short, long)]
    pub update: bool,
    /// Print what would be transferred, and transfer nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Only files matching this glob ('*.h5' matches names at any depth, 'run1/**/*.fits'
    /// paths below the source); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files and directories matching this glob; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
}

/// How one big file is downloaded.
#[derive(Debug, Args, Clone)]
pub struct StreamArgs {
    /// Connections for one big file, each fetching its own byte ranges (default: the
    /// profile's `streams`, else 4; 1 for a single stream).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub streams: Option<u16>,
    /// Files at least this large are fetched in several streams (default: the profile's
    /// `stream_cutoff`, else 64M; K, M, G suffixes).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub stream_cutoff: Option<u64>,
}

fn size_arg(s: &str) -> std::result::Result<u64, String> {
    ctadata::config::parse_size(s)
        .ok_or_else(|| format!("'{s}' is not a size (e.g. 64M, 1G, 1048576)"))
}

// ---- tape (issue 14, tape) ----
/// `stage` subcommands.
#[derive(Debug, Subcommand)]
pub enum StageAction {
    /// The state of each file of a stage request.
    Status {
        /// The request's id (printed by `stage`).
        id: String,
    },
    /// Cancel staging (of the files given, or of all the request's files).
    Cancel {
        /// The request's id.
        id: String,
        /// Files of that request.
        paths: Vec<String>,
    },
    /// Forget a stage request at the storage (cancelling what is still going on).
    Delete {
        /// The request's id.
        id: String,
    },
}

/// Staging during `get`.
#[derive(Debug, Args, Clone)]
pub struct StageArgs {
    /// Stage files that are only on tape (NEARLINE) first, in one request, and download
    /// each as soon as it is on disk; files on disk start at once.
    #[arg(long)]
    pub stage: bool,
    /// With --stage: give up on files still on tape after this long (90s, 30m, 2h); the
    /// error names them and the request id.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, requires = "stage")]
    pub stage_timeout: Option<std::time::Duration>,
}

fn duration_arg(s: &str) -> std::result::Result<std::time::Duration, String> {
    ctadata::tape::parse_duration(s)
        .ok_or_else(|| format!("'{s}' is not a duration (e.g. 90s, 30m, 12h, 1d)"))
}
// ---- end of tape ----

/// `cert` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertAction {
    /// Subject, issuer, proxy type, validity, chain length and VOMS VO of a certificate
    /// (default: the profile's proxy, X509_USER_PROXY, or /tmp/x509up_u<uid>).
    Info {
        /// The PEM file.
        file: Option<PathBuf>,
    },
    /// Delegate your grid proxy to the platform's certificateservice.
    #[command(visible_alias = "upload-personal")]
    Upload {
        /// The proxy certificate file (PEM: certificate, key, chain), at most 7 days valid.
        file: PathBuf,
        /// Which certificate key it is stored for (cta, lst, arc; see CTACS_ALLOWED_CERT_KEYS).
        #[arg(long)]
        key: String,
        /// Store it for this user (admins only).
        #[arg(long)]
        user: Option<String>,
    },
    /// Upload the shared robot certificate (admins).
    UploadShared {
        /// The certificate file (PEM).
        file: PathBuf,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// The sources in order, which one is used, its subject, expiry and scopes (never the token).
    Status,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the resolved profile and where each value comes from.
    Show,
    /// Print the config files read, in order (later wins).
    Paths,
    /// Print the names of the profiles known (built in, and from the config files and
    /// variables), one per line.
    Profiles,
}

// ---- mount (issue 19) ----
/// Options of `mount`.
#[derive(Debug, Args, Clone)]
pub struct MountArgs {
    /// The remote directory to mount (a path of the profile, or a URL of its door).
    pub remote: String,
    /// An existing, empty local directory.
    pub mountpoint: PathBuf,
    /// Read-only (the default).
    #[arg(long, conflicts_with = "write")]
    pub read_only: bool,
    /// Allow writing: new files (uploaded at close), mkdir, rmdir, rm, mv.
    #[arg(long)]
    pub write: bool,
    /// Let other users use the mount (non-root users need user_allow_other in
    /// /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    /// Owner shown for every file (default: yours).
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// Group shown for every file (default: yours).
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,
    /// Permission bits removed from 0777 (directories) and 0666 (files), in octal.
    #[arg(long, value_name = "OCTAL", default_value = "022", value_parser = umask_arg)]
    pub umask: u32,
    /// How long listings and file attributes are cached (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration_arg)]
    pub dir_cache_time: std::time::Duration,
    /// Cache file blocks on disk in this directory (in DIR/blocks, emptied at start: one
    /// directory per mount), and spool new files there before their upload (DIR/spool);
    /// default: blocks in memory only, new files spooled to a private temporary directory.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Memory of the mount (K, M, G suffixes; default 256M): three quarters for the block
    /// cache, read-ahead included. With --cache-dir, the disk cache instead (default 1G;
    /// memory then takes a quarter of it, at most 192M).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub cache_max_size: Option<u64>,
    /// Return once the mount is ready, leaving it running in the background.
    #[arg(long)]
    pub daemon: bool,
    /// With --daemon: write the background process's id to this file.
    #[arg(long, value_name = "FILE", requires = "daemon")]
    pub pid_file: Option<PathBuf>,
    /// Append the mount's log lines (with times) to this file once it is mounted; errors
    /// before that still go to the terminal. Created 0600. Without it, a --daemon's log
    /// lines are lost once it has detached.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Stage files that are only on tape when they are opened, and wait (instead of
    /// failing the open).
    #[arg(long)]
    pub stage_on_open: bool,
    /// Deadline of each request to the server: past it the read or write fails with EIO.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration_arg)]
    pub io_timeout: std::time::Duration,
}

fn umask_arg(s: &str) -> std::result::Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("'{s}' is not an octal umask (e.g. 022, 077)"))
}
// ---- end of mount ----
