fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let code = match memcached::settings::parse_args(&argv) {
        Ok(_) => 0,
        Err(code) => code,
    };
    std::process::exit(code);
}
