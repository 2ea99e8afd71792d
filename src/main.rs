//! The pgtier binary: parse arguments, set up logging, run the command, map errors to exit codes.

use clap::Parser;

fn main() {
    let cli = pgtier::cli::Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    pgtier::signals::install();
    let code = match pgtier::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", pgtier::error::printable(&pgtier::cli::explain(&e)));
            e.exit_code()
        }
    };
    // A command a signal reached did not finish what it was asked: never exit 0 then.
    let code = if pgtier::signals::interrupted() { pgtier::error::EXIT_INTERRUPTED } else { code };
    if std::env::var_os("PGTIER_REPORT_PEAK_RSS").is_some() {
        report_peak_rss();
    }
    std::process::exit(code);
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    // pgtier reports what went wrong itself; the libraries' own chatter (the AWS credential
    // chain's retries, say) appears from -v on.
    let (level, others) = match (quiet, verbose) {
        (true, _) => ("error", "error"),
        (false, 0) => ("warn", "error"),
        (false, 1) => ("debug", "warn"),
        (false, _) => ("trace", "debug"),
    };
    // -q on the command line wins over PGTIER_LOG: cron's mail stays empty when all is well.
    let filter = match EnvFilter::try_from_env("PGTIER_LOG") {
        Ok(f) if !quiet => f,
        _ => EnvFilter::new(format!("pgtier={level},{others}")),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).with_target(false).without_time().init();
}

/// Prints this process's own peak RSS (not its children's) for the benchmark script.
fn report_peak_rss() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
        eprintln!("pgtier-peak-rss-kib: {}", line.trim_start_matches("VmHWM:").trim().trim_end_matches(" kB"));
    }
    // What it read: through read() (rchar, page cache included) and from storage (read_bytes).
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| io.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("?").to_string();
    eprintln!("pgtier-io: rchar={} read_bytes={}", field("rchar:"), field("read_bytes:"));
}
