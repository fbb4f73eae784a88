// A fetched request belongs to the core whose ring fetched it.
use ringleader::cmd_slot::{Fetched, SlotProtocol};

fn elsewhere<P: SlotProtocol>(req: Fetched<P>) {
    std::thread::spawn(move || req.commit());
}

fn main() {}
