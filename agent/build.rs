//! Compiles the vendored Loki `push.proto` and the OTLP logs protos with protox (pure Rust, so no
//! `protoc` binary is needed) and generates prost messages into `OUT_DIR`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/push.proto",
        "proto/opentelemetry/proto/collector/logs/v1/logs_service.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    let mut cfg = prost_build::Config::new();
    cfg.extern_path(".google.protobuf.Timestamp", "::prost_types::Timestamp");
    cfg.compile_fds(fds)?;
    Ok(())
}
