//! The FUSE ABI module of `examples/fuse_passthrough` (included with `#[path]`): struct
//! sizes and field offsets as Linux 6.18's `include/uapi/linux/fuse.h` lays them out,
//! requests from /dev/fuse split into header, arg 0 and rest, and short structs
//! zero-extended. No mount needed.

#[path = "../examples/fuse_passthrough/abi.rs"]
mod abi;

use std::mem::{offset_of, size_of};

use abi::*;

#[test]
fn field_offsets_match_the_kernel_header() {
    assert_eq!(offset_of!(InHeader, opcode), 4);
    assert_eq!(offset_of!(InHeader, unique), 8);
    assert_eq!(offset_of!(InHeader, nodeid), 16);
    assert_eq!(offset_of!(InHeader, uid), 24);
    assert_eq!(offset_of!(InHeader, pid), 32);
    assert_eq!(offset_of!(InHeader, total_extlen), 36);
    assert_eq!(offset_of!(OutHeader, error), 4);
    assert_eq!(offset_of!(Attr, atimensec), 48);
    assert_eq!(offset_of!(Attr, mode), 60);
    assert_eq!(offset_of!(Attr, blksize), 80);
    assert_eq!(offset_of!(EntryOut, attr), 40);
    assert_eq!(offset_of!(AttrOut, attr), 16);
    assert_eq!(offset_of!(SetattrIn, size), 16);
    assert_eq!(offset_of!(SetattrIn, atimensec), 56);
    assert_eq!(offset_of!(SetattrIn, mode), 68);
    assert_eq!(offset_of!(SetattrIn, uid), 76);
    assert_eq!(offset_of!(ReadIn, size), 16);
    assert_eq!(offset_of!(ReadIn, lock_owner), 24);
    assert_eq!(offset_of!(WriteIn, write_flags), 20);
    assert_eq!(offset_of!(InitIn, flags2), 16);
    assert_eq!(offset_of!(InitOut, max_background), 16);
    assert_eq!(offset_of!(InitOut, max_write), 20);
    assert_eq!(offset_of!(InitOut, max_pages), 28);
    assert_eq!(offset_of!(InitOut, flags2), 32);
    assert_eq!(offset_of!(InitOut, max_stack_depth), 36);
    assert_eq!(offset_of!(InitOut, request_timeout), 40);
    assert_eq!(offset_of!(Kstatfs, bsize), 40);
    assert_eq!(offset_of!(CopyFileRangeIn, nodeid_out), 16);
    assert_eq!(offset_of!(CopyFileRangeIn, len), 40);
    assert_eq!(offset_of!(Dirent, namelen), 16);
    assert_eq!(offset_of!(UringEntInOut, payload_sz), 16);
    assert_eq!(offset_of!(UringCmdReq, qid), 16);
    // FUSE_OVER_IO_URING is bit 41 of the 64-bit flags: bit 9 of flags2.
    assert_eq!(init::OVER_IO_URING >> 32, 1 << 9);
    assert_eq!(DEV_IOC_CLONE, 0x8004_e500);
}

fn request(opcode: u32, body: &[u8]) -> Vec<u8> {
    let hdr = InHeader {
        len: (size_of::<InHeader>() + body.len()) as u32,
        opcode,
        unique: 42,
        nodeid: 7,
        ..Default::default()
    };
    let mut v = hdr.as_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn split_request_cuts_header_arg0_and_rest() {
    // LOOKUP: no arg 0, the name is the rest.
    let req = request(op::LOOKUP, b"name\0");
    let (hdr, arg, rest) = split_request(&req).unwrap();
    assert_eq!((hdr.opcode, hdr.unique, hdr.nodeid), (op::LOOKUP, 42, 7));
    assert_eq!((arg, rest), (&b""[..], &b"name\0"[..]));

    // WRITE: the 40-byte fuse_write_in, then the data.
    let w = WriteIn {
        fh: 3,
        offset: 4096,
        size: 5,
        ..Default::default()
    };
    let mut body = w.as_bytes().to_vec();
    body.extend_from_slice(b"hello");
    let req = request(op::WRITE, &body);
    let (_, arg, rest) = split_request(&req).unwrap();
    let back: WriteIn = read(arg);
    assert_eq!((back.fh, back.offset, back.size), (3, 4096, 5));
    assert_eq!(rest, b"hello");

    // RENAME2: 16 bytes, then two names.
    let r = Rename2In {
        newdir: 9,
        flags: 1,
        padding: 0,
    };
    let mut body = r.as_bytes().to_vec();
    body.extend_from_slice(b"a\0b\0");
    let req = request(op::RENAME2, &body);
    let (_, arg, rest) = split_request(&req).unwrap();
    assert_eq!(arg.len(), 16);
    assert_eq!(rest, b"a\0b\0");

    // A buffer longer than the header's length: the tail is not part of the request.
    let mut req = request(op::LOOKUP, b"x\0");
    req.extend_from_slice(b"garbage");
    assert_eq!(split_request(&req).unwrap().2, b"x\0");
    // Shorter than a header, or than the header says: refused.
    assert!(split_request(&req[..39]).is_none());
    let req = request(op::LOOKUP, b"x\0");
    assert!(split_request(&req[..req.len() - 1]).is_none());
}

#[test]
fn short_structs_are_zero_extended() {
    // The kernel sends an 8-byte fuse_setxattr_in without FUSE_SETXATTR_EXT; an older
    // fuse_init_in is 16 bytes.
    let i: InitIn = read(&[7, 0, 0, 0, 45, 0, 0, 0]);
    assert_eq!((i.major, i.minor, i.flags, i.flags2), (7, 45, 0, 0));
    let empty: ReadIn = read(&[]);
    assert_eq!(empty.size, 0);
}
