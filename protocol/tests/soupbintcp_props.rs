//! Property tests: `decode(encode(p)) == p` for every SoupBinTCP packet type, and the stream decoder yields
//! the same frames however the byte stream is chunked (1-byte chunks included).

use bourse_protocol::fields::Alpha;
use bourse_protocol::soupbintcp::{
    DecodeError, FRAME_SIZE_MAX_DEFAULT, LoginAccepted, LoginRejectReason, LoginRequest, Packet,
    StreamBuffer, decode_frame, fuzz_check_stream, parse_numeric,
};
use proptest::prelude::*;

fn alpha<const N: usize>() -> impl Strategy<Value = Alpha<N>> {
    proptest::collection::vec(0x20u8..0x7f, N).prop_map(|v| {
        let mut a = [b' '; N];
        a.copy_from_slice(&v);
        Alpha(a)
    })
}

/// An owned packet description (a `Packet` borrows its payload).
#[derive(Clone, Debug)]
enum Spec {
    Login(LoginRequest),
    Accepted(LoginAccepted),
    Rejected(LoginRejectReason),
    Sequenced(Vec<u8>),
    Unsequenced(Vec<u8>),
    Debug(Vec<u8>),
    ServerHeartbeat,
    ClientHeartbeat,
    EndOfSession,
    Logout,
}

impl Spec {
    fn packet(&self) -> Packet<'_> {
        match self {
            Spec::Login(r) => Packet::LoginRequest(*r),
            Spec::Accepted(a) => Packet::LoginAccepted(*a),
            Spec::Rejected(r) => Packet::LoginRejected(*r),
            Spec::Sequenced(p) => Packet::SequencedData(p),
            Spec::Unsequenced(p) => Packet::UnsequencedData(p),
            Spec::Debug(p) => Packet::Debug(p),
            Spec::ServerHeartbeat => Packet::ServerHeartbeat,
            Spec::ClientHeartbeat => Packet::ClientHeartbeat,
            Spec::EndOfSession => Packet::EndOfSession,
            Spec::Logout => Packet::LogoutRequest,
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    let payload = || proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        (
            alpha::<6>(),
            alpha::<10>(),
            alpha::<10>(),
            any::<u64>(),
            proptest::option::of(0u32..=99_999)
        )
            .prop_map(
                |(username, password, requested_session, requested_sequence_number, heartbeat_timeout_ms)| {
                    Spec::Login(LoginRequest {
                        username,
                        password,
                        requested_session,
                        requested_sequence_number,
                        heartbeat_timeout_ms,
                    })
                }
            ),
        (alpha::<10>(), any::<u64>()).prop_map(|(session, sequence_number)| Spec::Accepted(LoginAccepted {
            session,
            sequence_number
        })),
        prop_oneof![
            Just(LoginRejectReason::NotAuthorized),
            Just(LoginRejectReason::SessionNotAvailable)
        ]
        .prop_map(Spec::Rejected),
        payload().prop_map(Spec::Sequenced),
        payload().prop_map(Spec::Unsequenced),
        payload().prop_map(Spec::Debug),
        Just(Spec::ServerHeartbeat),
        Just(Spec::ClientHeartbeat),
        Just(Spec::EndOfSession),
        Just(Spec::Logout),
    ]
}

fn encode_all(specs: &[Spec]) -> Vec<u8> {
    let mut stream = Vec::new();
    let mut frame = [0u8; 512];
    for s in specs {
        let len = s.packet().encode(&mut frame).unwrap();
        stream.extend_from_slice(&frame[..len]);
    }
    stream
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity(s in spec()) {
        let mut frame = [0u8; 512];
        let len = s.packet().encode(&mut frame).unwrap();
        prop_assert_eq!(len, s.packet().frame_len());
        prop_assert_eq!(decode_frame(&frame[..len], FRAME_SIZE_MAX_DEFAULT), Ok(Some((s.packet(), len))));
    }

    #[test]
    fn numeric_fields_parse_under_any_padding(value in any::<u64>(), zeros in 0usize..4, left in 0usize..4, right in 0usize..4) {
        let digits = value.to_string();
        let text = format!("{}{}{digits}{}", " ".repeat(left), "0".repeat(zeros), " ".repeat(right));
        prop_assert_eq!(parse_numeric(text.as_bytes()), Ok(value));
    }

    #[test]
    fn the_stream_decoder_ignores_chunking(
        specs in proptest::collection::vec(spec(), 0..40),
        chunks in proptest::collection::vec(1usize..300, 1..50),
        capacity_extra in 0usize..600,
        one_byte in any::<bool>(),
    ) {
        let stream = encode_all(&specs);
        let mut buffer = StreamBuffer::new(FRAME_SIZE_MAX_DEFAULT + capacity_extra, FRAME_SIZE_MAX_DEFAULT);
        let mut got = Vec::new();
        let mut fed = 0;
        let mut i = 0;
        while fed < stream.len() {
            let chunk = if one_byte { 1 } else { chunks[i % chunks.len()] };
            i += 1;
            let end = (fed + chunk).min(stream.len());
            fed += buffer.push(&stream[fed..end]);
            while let Some(packet) = buffer.next_packet().unwrap() {
                let mut frame = [0u8; 512];
                let len = packet.encode(&mut frame).unwrap();
                got.push(frame[..len].to_vec());
            }
        }
        prop_assert!(buffer.pending().is_empty());
        prop_assert_eq!(got.len(), specs.len());
        for (bytes, s) in got.iter().zip(&specs) {
            prop_assert_eq!(decode_frame(bytes, FRAME_SIZE_MAX_DEFAULT), Ok(Some((s.packet(), bytes.len()))));
        }
    }

    #[test]
    fn a_truncated_stream_leaves_exactly_the_partial_frame_pending(
        specs in proptest::collection::vec(spec(), 1..10),
        cut in any::<proptest::sample::Index>(),
    ) {
        let stream = encode_all(&specs);
        let cut = cut.index(stream.len());
        let mut buffer = StreamBuffer::new(FRAME_SIZE_MAX_DEFAULT, FRAME_SIZE_MAX_DEFAULT);
        let mut fed = 0;
        let mut frames = 0;
        let mut consumed = 0;
        while fed < cut {
            fed += buffer.push(&stream[fed..cut]);
            while let Some(p) = buffer.next_packet().unwrap() {
                consumed += p.frame_len();
                frames += 1;
            }
        }
        prop_assert_eq!(buffer.pending(), &stream[consumed..cut]);
        prop_assert!(frames <= specs.len());
    }

    #[test]
    fn the_fuzz_check_holds_on_random_bytes(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_check_stream(&input);
    }

    #[test]
    fn the_fuzz_check_holds_on_valid_streams(specs in proptest::collection::vec(spec(), 0..20), size in any::<u8>(), seed in any::<u8>()) {
        let mut input = vec![size, seed];
        input.extend(encode_all(&specs));
        let fits = specs.iter().all(|s| s.packet().frame_len() <= 54 + usize::from(size) * 4);
        let check = fuzz_check_stream(&input);
        if fits {
            prop_assert_eq!(check.packets, specs.len());
            prop_assert_eq!(check.error, None);
        } else {
            let oversize = matches!(check.error, Some(DecodeError::Oversize { .. }));
            prop_assert!(oversize, "{:?}", check);
        }
    }
}

#[test]
fn an_oversize_frame_in_a_stream_is_an_error_not_a_stall() {
    let mut buffer = StreamBuffer::new(64, 64);
    // One heartbeat, then a Sequenced Data of 100 bytes in a 64-byte maximum.
    buffer.push(&[0, 1, b'H', 0, 101, b'S']);
    assert_eq!(buffer.next_packet(), Ok(Some(Packet::ServerHeartbeat)));
    assert_eq!(
        buffer.next_packet(),
        Err(DecodeError::Oversize {
            frame_size: 103,
            frame_size_max: 64
        })
    );
}

#[test]
fn a_drained_buffer_restarts_at_the_front_without_copying() {
    let mut buffer = StreamBuffer::new(64, 64);
    buffer.push(&[0, 1, b'H', 0, 1, b'R']);
    assert_eq!(buffer.next_packet(), Ok(Some(Packet::ServerHeartbeat)));
    assert_eq!(buffer.next_packet(), Ok(Some(Packet::ClientHeartbeat)));
    assert_eq!(buffer.next_packet(), Ok(None));
    assert_eq!(buffer.spare_mut().len(), 64);
}

/// What a drain saw: `Ok(packet)` per frame (as text), then the first error, or the pending bytes at the end.
type Seen = Vec<Result<String, DecodeError>>;

/// Feeds `stream` into a buffer in chunks whose sizes cycle through `sizes`, calling `drain` before the first
/// chunk and after each one; `drain` records what it saw and returns `false` after an error (the feed stops).
fn feed(
    stream: &[u8],
    sizes: &[usize],
    frame_size_max: usize,
    mut drain: impl FnMut(&mut StreamBuffer, &mut Seen) -> bool,
) -> Seen {
    let mut buffer = StreamBuffer::new(4 * frame_size_max, frame_size_max);
    let mut seen = Vec::new();
    let mut fed = 0;
    for &size in sizes.iter().cycle().take(stream.len() + 1) {
        if !drain(&mut buffer, &mut seen) {
            return seen;
        }
        if fed == stream.len() {
            break;
        }
        fed += buffer.push(&stream[fed..(fed + size).min(stream.len())]);
    }
    seen.push(Ok(format!("pending {:?}", buffer.pending())));
    seen
}

/// The reference: `next_packet` until `Ok(None)` after every chunk.
fn drain_with_next_packet(stream: &[u8], sizes: &[usize], frame_size_max: usize) -> Seen {
    feed(stream, sizes, frame_size_max, |buffer, seen| {
        // Bounded: every iteration but the last consumes a frame of at least 3 bytes.
        for _ in 0..=stream.len() {
            match buffer.next_packet() {
                Ok(Some(packet)) => seen.push(Ok(format!("{packet:?}"))),
                Ok(None) => return true,
                Err(error) => {
                    seen.push(Err(error));
                    return false;
                }
            }
        }
        true
    })
}

/// The same with `for_each_packet`, at most `frames_max` frames per call and a `Break` after every
/// `break_every`-th frame (0: never), so partial drains are exercised too.
fn drain_with_for_each(
    stream: &[u8],
    sizes: &[usize],
    frame_size_max: usize,
    frames_max: usize,
    break_every: usize,
) -> Seen {
    feed(stream, sizes, frame_size_max, |buffer, seen| {
        // Bounded: each call either consumes at least one frame or returns 0 (drained).
        for _ in 0..=stream.len() {
            let mut count = 0;
            let result = buffer.for_each_packet(frames_max, |packet| {
                seen.push(Ok(format!("{packet:?}")));
                count += 1;
                if break_every != 0 && count % break_every == 0 {
                    core::ops::ControlFlow::Break(())
                } else {
                    core::ops::ControlFlow::Continue(())
                }
            });
            match result {
                Ok(0) => return true,
                Ok(frames) => {
                    assert_eq!(frames, count, "the count is the frames handed out");
                    assert!(frames <= frames_max);
                }
                Err(error) => {
                    seen.push(Err(error));
                    return false;
                }
            }
        }
        true
    })
}

proptest! {
    #[test]
    fn for_each_packet_matches_next_packet_on_valid_streams(
        specs in proptest::collection::vec(spec(), 0..30),
        sizes in proptest::collection::vec(1usize..200, 1..8),
        cut in any::<prop::sample::Index>(),
        frames_max in 1usize..6,
        break_every in 0usize..4,
    ) {
        let mut stream = encode_all(&specs);
        // Sometimes end mid-frame, so a partial frame is left pending.
        let keep = cut.index(stream.len() + 1);
        stream.truncate(keep);
        let reference = drain_with_next_packet(&stream, &sizes, FRAME_SIZE_MAX_DEFAULT);
        let drained = drain_with_for_each(&stream, &sizes, FRAME_SIZE_MAX_DEFAULT, frames_max, break_every);
        prop_assert_eq!(drained, reference);
    }

    #[test]
    fn for_each_packet_matches_next_packet_on_random_bytes(
        prefix in proptest::collection::vec(spec(), 0..6),
        noise in proptest::collection::vec(any::<u8>(), 0..400),
        sizes in proptest::collection::vec(1usize..64, 1..6),
        frame_size_max in prop_oneof![Just(FRAME_SIZE_MAX_DEFAULT), 100usize..300],
        frames_max in prop_oneof![Just(usize::MAX), 1usize..4],
    ) {
        // Valid frames, then random bytes: zero lengths, oversize prefixes, unknown types, wrong lengths.
        let mut stream = encode_all(&prefix);
        stream.extend_from_slice(&noise);
        let reference = drain_with_next_packet(&stream, &sizes, frame_size_max);
        let drained = drain_with_for_each(&stream, &sizes, frame_size_max, frames_max, 0);
        prop_assert_eq!(drained, reference);
    }
}

#[test]
fn for_each_packet_reports_zero_length_and_oversize_like_next_packet() {
    for stream in [
        &[0u8, 1, b'R', 0, 0][..],
        &[0, 1, b'R', 0xff, 0xff, b'U'][..],
        &[0, 1, b'R', 0, 1, b'?'][..],
    ] {
        let reference = drain_with_next_packet(stream, &[stream.len()], FRAME_SIZE_MAX_DEFAULT);
        let drained = drain_with_for_each(stream, &[stream.len()], FRAME_SIZE_MAX_DEFAULT, usize::MAX, 0);
        assert_eq!(drained, reference);
        assert_eq!(reference.len(), 2, "one heartbeat, then the error: {reference:?}");
        assert!(reference[1].is_err());
    }
}
