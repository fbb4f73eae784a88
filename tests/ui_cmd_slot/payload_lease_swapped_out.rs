// The driver keeps the payload's address: safe code must not move the slot's lease out.
use ringleader::buf::Lease;
use ringleader::cmd_slot::{Fetched, SlotProtocol};

fn steal<P: SlotProtocol>(mut req: Fetched<P>, mine: Lease) -> Lease {
    let taken = std::mem::replace(req.payload_mut(), mine);
    req.commit();
    taken
}

fn main() {}
