//! The load-testing harness (work in progress: see the issue tracker).

fn main() {
    eprintln!("rtm-loadtest is not implemented yet");
    std::process::exit(2);
}
