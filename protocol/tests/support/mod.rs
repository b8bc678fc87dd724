//! Test support: run stock `tshark` over our bytes and read back the fields it decodes.
//!
//! Bytes are written as an `od`-style hex dump, wrapped into a pcap by `text2pcap` (fake TCP or UDP headers,
//! no capture privileges), and decoded by `tshark -T fields`. Missing tools fail the test with the install
//! command, never skip it.
#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The port the fake packets are addressed to; the dissectors are told to decode it.
pub const PORT: u16 = 26400;

/// Which transport the fake packets travel on.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// SoupBinTCP over TCP, server port [`PORT`]; `to_server` picks the direction of every packet.
    Tcp { to_server: bool },
    /// MoldUDP64 over UDP to port [`PORT`].
    Udp,
}

fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is needed by this test and is missing: install it with \
         `apt-get install -y tshark` (or run scripts/install-deps as root)"
    );
}

fn scratch_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bourse-tshark-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `packets` (one TCP segment or UDP datagram each) as a pcap in a fresh scratch directory and returns
/// the directory (to remove afterwards) and the tshark arguments that read it with the right dissector.
fn pcap_of(transport: Transport, packets: &[Vec<u8>]) -> (PathBuf, Vec<String>) {
    require("text2pcap");
    require("tshark");
    let dir = scratch_dir();
    let mut dump = String::new();
    for packet in packets {
        for (i, chunk) in packet.chunks(16).enumerate() {
            write!(dump, "{:06x}", i * 16).unwrap();
            for b in chunk {
                write!(dump, " {b:02x}").unwrap();
            }
            dump.push('\n');
        }
        dump.push('\n');
    }
    let txt = dir.join("packets.txt");
    let pcap = dir.join("packets.pcap");
    std::fs::write(&txt, dump).unwrap();
    let ports = match transport {
        Transport::Tcp { to_server: true } | Transport::Udp => format!("40001,{PORT}"),
        Transport::Tcp { to_server: false } => format!("{PORT},40001"),
    };
    let flag = match transport {
        Transport::Tcp { .. } => "-T",
        Transport::Udp => "-u",
    };
    let status = Command::new("text2pcap")
        .args(["-q", flag, &ports])
        .arg(&txt)
        .arg(&pcap)
        .status()
        .unwrap();
    assert!(status.success(), "text2pcap failed");
    let pref = match transport {
        Transport::Tcp { .. } => format!("soupbintcp.tcp.port:{PORT}"),
        Transport::Udp => format!("moldudp64.udp.port:{PORT}"),
    };
    let args = vec![
        "-r".to_string(),
        pcap.display().to_string(),
        "-o".to_string(),
        pref,
    ];
    (dir, args)
}

fn run_tshark(dir: &PathBuf, args: &[String]) -> String {
    let out = Command::new("tshark").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
    String::from_utf8(out.stdout).unwrap()
}

/// Decodes each of `packets` (one TCP segment or UDP datagram each) with tshark and returns, for every
/// packet that tshark shows under `filter`, the requested `fields` as tshark prints them (`-T fields`,
/// occurrences separated by `,`).
pub fn tshark_fields(
    transport: Transport,
    packets: &[Vec<u8>],
    filter: &str,
    fields: &[&str],
) -> Vec<Vec<String>> {
    let (dir, mut args) = pcap_of(transport, packets);
    for a in ["-Y", filter, "-T", "fields", "-E", "occurrence=a"] {
        args.push(a.to_string());
    }
    for f in fields {
        args.push("-e".to_string());
        args.push((*f).to_string());
    }
    run_tshark(&dir, &args)
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Like [`tshark_fields`], but returns each field's display line as tshark shows it (the PDML `showname`,
/// e.g. `Requested sequence number: 1`), occurrences separated by `,`. For fields whose `-T fields` value is
/// not the decoded one (SoupBinTCP's ASCII sequence numbers print as `X` there).
pub fn tshark_shownames(
    transport: Transport,
    packets: &[Vec<u8>],
    filter: &str,
    fields: &[&str],
) -> Vec<Vec<String>> {
    let (dir, mut args) = pcap_of(transport, packets);
    for a in ["-Y", filter, "-T", "pdml"] {
        args.push(a.to_string());
    }
    let pdml = run_tshark(&dir, &args);
    pdml.split("<packet>")
        .skip(1)
        .map(|packet| {
            fields
                .iter()
                .map(|field| {
                    let tag = format!("<field name=\"{field}\" showname=\"");
                    packet
                        .match_indices(&tag)
                        .map(|(at, _)| {
                            let rest = &packet[at + tag.len()..];
                            xml_unescape(&rest[..rest.find('"').unwrap_or(rest.len())])
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect()
        })
        .collect()
}

fn xml_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
