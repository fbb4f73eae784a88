#[ringleader::main]
fn main() {}
