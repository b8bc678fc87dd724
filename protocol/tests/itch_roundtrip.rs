//! ITCH 5.0 property tests: `decode(encode(m)) == m` for every message type, and decoding arbitrary bytes
//! never panics.

mod itch_strategy;

use bourse_protocol::itch::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

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
