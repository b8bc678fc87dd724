//! The tshark harness itself works: a hand-written SoupBinTCP Client Heartbeat and a MoldUDP64 heartbeat.

mod support;
use support::{Transport, tshark_fields};

#[test]
fn tshark_reads_hand_written_soupbintcp_and_moldudp64() {
    // SoupBinTCP Client Heartbeat: length 1, type 'R'.
    let rows = tshark_fields(
        Transport::Tcp { to_server: true },
        &[vec![0x00, 0x01, b'R']],
        "soupbintcp",
        &["soupbintcp.packet_type"],
    );
    assert_eq!(rows, vec![vec!["'R'".to_string()]]);
    // MoldUDP64 heartbeat: session "SESSION001", sequence 7, count 0.
    let mut mold = b"SESSION001".to_vec();
    mold.extend_from_slice(&7u64.to_be_bytes());
    mold.extend_from_slice(&0u16.to_be_bytes());
    let rows = tshark_fields(
        Transport::Udp,
        &[mold],
        "moldudp64",
        &["moldudp64.session", "moldudp64.sequence", "moldudp64.count"],
    );
    assert_eq!(
        rows,
        vec![vec!["SESSION001".to_string(), "7".to_string(), "0".to_string()]]
    );
}
