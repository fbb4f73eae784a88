//! What the client asks of the server: request size, direction, pattern and queue depth,
//! and which client asks.

/// The program that drives the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// `fio --ioengine=nbd` (libnbd): time-based, a ramp, then a measured window.
    Fio,
    /// `qemu-img bench`: a fixed count of requests at a fixed stride.
    QemuImg,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::Fio => "fio",
            Client::QemuImg => "qemu-img",
        }
    }

    pub fn from_name(name: &str) -> Option<Client> {
        [Client::Fio, Client::QemuImg]
            .into_iter()
            .find(|c| c.name() == name)
    }

    /// The workloads run when `--workloads` is not given.
    pub fn default_workloads(self) -> Vec<Workload> {
        let names: &[&str] = match self {
            Client::Fio => &[
                "rand-read-qd32",
                "rand-write-qd32",
                "seq-read-256k",
                "seq-write-256k",
            ],
            Client::QemuImg => &[
                "rand-read-qd1",
                "rand-write-qd1",
                "rand-read-qd32",
                "rand-write-qd32",
                "seq-read-64k",
            ],
        };
        WORKLOADS
            .iter()
            .filter(|w| names.contains(&w.name))
            .copied()
            .collect()
    }
}

/// One kind of request stream.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub name: &'static str,
    pub write: bool,
    /// Random offsets (fio: `randread`/`randwrite`; qemu-img: a prime stride) or sequential.
    pub random: bool,
    /// Request size, bytes.
    pub size: u64,
    /// Requests in flight.
    pub depth: u32,
    /// Requests per `qemu-img bench` run (fio runs for a time instead).
    pub qemu_img_count: u64,
}

/// Every workload `--workloads` can name.
pub const WORKLOADS: [Workload; 7] = [
    Workload {
        name: "rand-read-qd1",
        write: false,
        random: true,
        size: 4096,
        depth: 1,
        qemu_img_count: 40_000,
    },
    Workload {
        name: "rand-write-qd1",
        write: true,
        random: true,
        size: 4096,
        depth: 1,
        qemu_img_count: 40_000,
    },
    Workload {
        name: "rand-read-qd32",
        write: false,
        random: true,
        size: 4096,
        depth: 32,
        qemu_img_count: 200_000,
    },
    Workload {
        name: "rand-write-qd32",
        write: true,
        random: true,
        size: 4096,
        depth: 32,
        qemu_img_count: 200_000,
    },
    Workload {
        name: "seq-read-64k",
        write: false,
        random: false,
        size: 65536,
        depth: 32,
        qemu_img_count: 50_000,
    },
    Workload {
        name: "seq-read-256k",
        write: false,
        random: false,
        size: 256 << 10,
        depth: 8,
        qemu_img_count: 20_000,
    },
    Workload {
        name: "seq-write-256k",
        write: true,
        random: false,
        size: 256 << 10,
        depth: 8,
        qemu_img_count: 20_000,
    },
];

impl Workload {
    pub fn from_name(name: &str) -> Option<Workload> {
        WORKLOADS.iter().find(|w| w.name == name).copied()
    }

    /// `4 KiB random read, QD 32`.
    pub fn describe(&self) -> String {
        let size = if self.size.is_multiple_of(1 << 20) {
            format!("{} MiB", self.size >> 20)
        } else if self.size.is_multiple_of(1024) {
            format!("{} KiB", self.size >> 10)
        } else {
            format!("{} B", self.size)
        };
        format!(
            "{size} {} {}, QD {}",
            if self.random { "random" } else { "sequential" },
            if self.write { "write" } else { "read" },
            self.depth
        )
    }

    /// `qemu-img bench -S`: the stride between requests, bytes. Random rows use 7919 (a
    /// prime) requests, so every block of the 1 GiB image is visited, in a scattered order,
    /// before any repeats.
    pub fn qemu_img_step(&self) -> u64 {
        if self.random {
            7919 * self.size
        } else {
            self.size
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defaults_exist() {
        for (i, w) in WORKLOADS.iter().enumerate() {
            assert!(WORKLOADS[i + 1..].iter().all(|v| v.name != w.name));
        }
        assert_eq!(Client::Fio.default_workloads().len(), 4);
        assert_eq!(Client::QemuImg.default_workloads().len(), 5);
    }

    #[test]
    fn descriptions() {
        let w = Workload::from_name("seq-write-256k").unwrap();
        assert_eq!(w.describe(), "256 KiB sequential write, QD 8");
        let w = Workload::from_name("rand-read-qd32").unwrap();
        assert_eq!(w.describe(), "4 KiB random read, QD 32");
        assert_eq!(w.qemu_img_step(), 7919 * 4096);
    }
}
