//! `zkc`: compile GGUF models into zero-knowledge circuits and prove their inference.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of stdout goes away (`zkc ... | head`)
    // instead of failing on the write.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    zkc_runtime::cli::Cli::parse().run()
}
