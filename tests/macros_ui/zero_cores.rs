#[ringleader::main(cores = 0)]
async fn main() {}
