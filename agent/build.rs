//! Compiles the vendored Loki `push.proto` with protox (pure Rust, so no `protoc` binary is
//! needed) and generates prost messages into `OUT_DIR`. OTLP comes from `opentelemetry-proto`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/push.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let mut cfg = prost_build::Config::new();
    cfg.extern_path(".google.protobuf.Timestamp", "::prost_types::Timestamp");
    cfg.compile_fds(fds)?;
    Ok(())
}
