//! The `pincer` binary: everything lives in the library; see [`pincer::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pincer::cli::run().await
}
