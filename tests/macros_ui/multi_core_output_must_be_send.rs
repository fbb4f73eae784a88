// With `cores = N` the body runs on core 0 of a `Runtime` and its output crosses threads.
#[ringleader::main(cores = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
