//! Wireshark agrees: every SoupBinTCP packet type we encode is read back by stock tshark with the values we
//! encoded.

mod support;
use bourse_protocol::fields::Alpha;
use bourse_protocol::soupbintcp::{LoginAccepted, LoginRejectReason, LoginRequest, Packet};
use support::{Transport, tshark_fields, tshark_shownames};

fn frame(packet: Packet<'_>) -> Vec<u8> {
    let mut out = vec![0u8; packet.frame_len()];
    let len = packet.encode(&mut out).unwrap();
    assert_eq!(len, out.len());
    out
}

fn login(sequence: u64, heartbeat_timeout_ms: Option<u32>) -> Packet<'static> {
    Packet::LoginRequest(LoginRequest {
        username: Alpha::new("USER01").unwrap(),
        password: Alpha::new("secret").unwrap(),
        requested_session: Alpha::new("SESSION001").unwrap(),
        requested_sequence_number: sequence,
        heartbeat_timeout_ms,
    })
}

#[test]
fn client_packets() {
    let packets = vec![
        frame(login(1234, None)),
        frame(login(0, Some(15_000))),
        frame(Packet::UnsequencedData(&[0x01, 0x02, 0xff])),
        frame(Packet::ClientHeartbeat),
        frame(Packet::Debug(b"client says hi")),
        frame(Packet::LogoutRequest),
    ];
    let rows = tshark_fields(
        Transport::Tcp { to_server: true },
        &packets,
        "soupbintcp",
        &[
            "soupbintcp.packet_length",
            "soupbintcp.packet_type",
            "soupbintcp.username",
            "soupbintcp.password",
            "soupbintcp.session",
            "soupbintcp.message",
            "soupbintcp.text",
        ],
    );
    let row = |cells: [&str; 7]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        vec![
            row(["47", "'L'", "USER01", "secret    ", "SESSION001", "", ""]),
            // tshark 4.0 knows the 4.0 fields only; the 4.1 heartbeat timeout follows them.
            row(["52", "'L'", "USER01", "secret    ", "SESSION001", "", ""]),
            row(["4", "'U'", "", "", "", "0102ff", ""]),
            row(["1", "'R'", "", "", "", "", ""]),
            row(["15", "'+'", "", "", "", "", "client says hi"]),
            row(["1", "'O'", "", "", "", "", ""]),
        ]
    );
    // The ASCII sequence number prints as "X" under -T fields; its decoded display line carries the value.
    let shown = tshark_shownames(
        Transport::Tcp { to_server: true },
        &packets[..2],
        "soupbintcp",
        &["soupbintcp.req_seq_num"],
    );
    assert_eq!(
        shown,
        vec![
            vec!["Requested sequence number: 1234".to_string()],
            vec!["Requested sequence number: 0".to_string()]
        ]
    );
}

#[test]
fn server_packets() {
    let packets = vec![
        frame(Packet::LoginAccepted(LoginAccepted {
            session: Alpha::new("SESSION001").unwrap(),
            sequence_number: 41,
        })),
        frame(Packet::SequencedData(&[0xde, 0xad])),
        frame(Packet::SequencedData(&[0xbe, 0xef])),
        frame(Packet::ServerHeartbeat),
        frame(Packet::Debug(b"server says hi")),
        frame(Packet::EndOfSession),
        frame(Packet::LoginRejected(LoginRejectReason::NotAuthorized)),
        frame(Packet::LoginRejected(LoginRejectReason::SessionNotAvailable)),
    ];
    let rows = tshark_fields(
        Transport::Tcp { to_server: false },
        &packets,
        "soupbintcp",
        &[
            "soupbintcp.packet_length",
            "soupbintcp.packet_type",
            "soupbintcp.session",
            "soupbintcp.message",
            "soupbintcp.text",
            "soupbintcp.reject_code",
        ],
    );
    let row = |cells: [&str; 6]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        vec![
            row(["31", "'A'", "SESSION001", "", "", ""]),
            row(["3", "'S'", "", "dead", "", ""]),
            row(["3", "'S'", "", "beef", "", ""]),
            row(["1", "'H'", "", "", "", ""]),
            row(["15", "'+'", "", "", "server says hi", ""]),
            row(["1", "'Z'", "", "", "", ""]),
            row(["2", "'J'", "", "", "", "'A'"]),
            row(["2", "'J'", "", "", "", "'S'"]),
        ]
    );
    // tshark numbers Sequenced Data from the Login Accepted's sequence number.
    let shown = tshark_shownames(
        Transport::Tcp { to_server: false },
        &packets[..3],
        "soupbintcp",
        &["soupbintcp.next_seq_num", "soupbintcp.seq_num"],
    );
    assert_eq!(
        shown,
        vec![
            vec!["Next sequence number: 41".to_string(), String::new()],
            vec![String::new(), "Sequence number: 41 (Calculated)".to_string()],
            vec![String::new(), "Sequence number: 42 (Calculated)".to_string()],
        ]
    );
}
