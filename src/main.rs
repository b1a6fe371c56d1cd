//! Entry point: parse arguments, then hand over to the library.

/// mimalloc instead of glibc's malloc: the intake allocates many small, short-lived buffers
/// per message on several threads, where glibc's arenas spent ~15 % of the request threads'
/// time (see BENCHMARKS.md, drip profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    uwlr_gateway::cli::main()
}
