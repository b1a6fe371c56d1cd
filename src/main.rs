//! Entry point: parse arguments, then hand over to the library.

fn main() -> std::process::ExitCode {
    uwlr_gateway::cli::main()
}
