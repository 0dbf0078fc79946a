//! Compiles the one assembly file for the target architecture.

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let file = match arch.as_str() {
        "x86_64" => "asm/switch_x86_64.S",
        "aarch64" => "asm/switch_aarch64.S",
        other => panic!("gevent supports x86_64 and aarch64, not {other}"),
    };
    println!("cargo:rerun-if-changed={file}");
    cc::Build::new().file(file).compile("gevent_switch");
}
