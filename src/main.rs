//! The `pincer` binary: everything lives in the library; see [`pincer::cli`].

// The allocator: the hot path allocates many small, short-lived buffers
// (JSON, SQL arguments, HTTP headers); mimalloc serves them with less work
// than glibc's malloc (see docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pincer::cli::run().await
}
