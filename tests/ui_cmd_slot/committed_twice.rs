// A fetched request is committed exactly once: `commit` consumes it.
use ringleader::cmd_slot::{Fetched, SlotProtocol};

fn twice<P: SlotProtocol>(req: Fetched<P>) {
    req.commit();
    req.commit();
}

fn main() {}
