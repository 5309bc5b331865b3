fn main() {
    cc::Build::new().file("c/mix.c").opt_level(2).compile("mix");
    println!("cargo:rerun-if-changed=c/mix.c");
}
