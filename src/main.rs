fn main() -> std::process::ExitCode {
    rescue::cli::main()
}
