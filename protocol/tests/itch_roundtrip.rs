//! ITCH 5.0 property tests: `decode(encode(m)) == m` for every message type, and decoding arbitrary bytes
//! never panics.

mod itch_strategy;

use bourse_protocol::itch::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The in-place encoder over a buffer full of garbage leaves exactly `encode`'s bytes, and nothing past them.
    #[test]
    fn encode_in_place_writes_the_bytes_of_encode(m in itch_strategy::message(false), garbage in any::<u8>(), short in any::<prop::sample::Index>()) {
        let mut expected = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut expected).unwrap();
        let mut out = [garbage; MESSAGE_LEN_MAX + 4];
        prop_assert_eq!(m.encode_in_place(&mut out), Ok(len));
        prop_assert_eq!(&out[..len], &expected[..len]);
        prop_assert!(out[len..].iter().all(|&b| b == garbage));
        let mut small = [garbage; MESSAGE_LEN_MAX];
        let short_len = short.index(len);
        prop_assert_eq!(
            m.encode_in_place(&mut small[..short_len]),
            Err(EncodeError::BufferTooSmall { needed: len, available: short_len })
        );
        prop_assert!(small.iter().all(|&b| b == garbage));
    }

    #[test]
    fn decode_of_encode_is_identity(m in itch_strategy::message(false)) {
        let mut buf = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut buf).unwrap();
        prop_assert_eq!(len, m.len());
        prop_assert_eq!(Some(len), message_len(m.message_type()));
        prop_assert_eq!(buf[0], m.message_type());
        prop_assert_eq!(Message::decode(&buf[..len]), Ok(m));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decoding_bytes_of_the_right_length_never_panics(
        t in prop::sample::select(b"SRHAFECXDUPBG".to_vec()),
        body in prop::collection::vec(any::<u8>(), MESSAGE_LEN_MAX),
    ) {
        let len = message_len(t).unwrap();
        let mut bytes = body[..len].to_vec();
        bytes[0] = t;
        // Whatever it says, a successful decode must re-encode to the same bytes.
        if let Ok(m) = Message::decode(&bytes) {
            let mut buf = [0u8; MESSAGE_LEN_MAX];
            let n = m.encode(&mut buf).unwrap();
            prop_assert_eq!(&buf[..n], &bytes[..]);
        }
    }
}
