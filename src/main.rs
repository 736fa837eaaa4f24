//! srtgate command line: parse arguments, load the configuration, set up
//! logging, hand over to the runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use srtgate::config::{Config, LogFormat};
use srtgate::io::bond::BondOptions;

const USAGE: &str = "\
usage: srtgate [-c FILE]           run with FILE (default conf/srtgate.yaml)
       srtgate --check-config FILE  validate FILE and exit 0 (valid) or 1
       srtgate bond --srt ADDR:PORT --to HOST:PORT --via IP [--via IP ...]
                                    SRTLA sender: bond a local SRT caller's
                                    stream over one link per source IP
       srtgate --version";

enum Command {
    Run(PathBuf),
    Bond(BondOptions),
    Check(PathBuf),
    Version,
    Help,
}

fn parse_args() -> Result<Command, String> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("bond") {
        args.next();
        return BondOptions::parse(args).map(Command::Bond).map_err(|e| {
            if e == srtgate::io::bond::USAGE {
                e
            } else {
                format!("bond: {e}\n{}", srtgate::io::bond::USAGE)
            }
        });
    }
    let mut config = PathBuf::from("conf/srtgate.yaml");
    let mut check = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" | "--config" => {
                config = args.next().ok_or("-c needs a file")?.into();
            }
            "--check-config" => {
                check = Some(PathBuf::from(
                    args.next().ok_or("--check-config needs a file")?,
                ));
            }
            "-V" | "--version" => return Ok(Command::Version),
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(match check {
        Some(file) => Command::Check(file),
        None => Command::Run(config),
    })
}

fn init_logging(config: &Config) {
    init_logging_with(&config.log.level, config.log.format);
}

fn init_logging_with(level: &str, format: LogFormat) {
    let filter = std::env::var("SRTGATE_LOG").unwrap_or_else(|_| level.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    // A panic is logged like any other error, with where it happened. Panics
    // inside third-party protocol code are caught and end one session only.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%location, "panicked: {msg}");
    }));
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    init_logging(&config);
    tracing::info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), "starting srtgate");
    srtgate::io::runtime::run(config, path).context("srtgate stopped with an error")
}

fn main() -> ExitCode {
    let command = match parse_args() {
        Ok(c) => c,
        Err(e) if e == srtgate::io::bond::USAGE => {
            println!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) if e.starts_with("bond: ") => {
            eprintln!("srtgate {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("srtgate: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Version => {
            println!("srtgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Check(path) => match Config::load(&path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e:#}");
                ExitCode::from(1)
            }
        },
        Command::Bond(opts) => {
            init_logging_with("info", LogFormat::Text);
            match srtgate::io::bond::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run(path) => match run(path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                if tracing::dispatcher::has_been_set() {
                    tracing::error!("{e:#}");
                }
                eprintln!("srtgate: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
