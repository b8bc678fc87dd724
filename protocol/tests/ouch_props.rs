//! Property tests: `decode(encode(m)) == m` for every OUCH 4.2 message type, and the decoders' fuzz check
//! holds on random bytes.

use bourse_protocol::fields::{Alpha, Firm, Symbol, Token};
use bourse_protocol::ouch::*;
use bourse_protocol::reason::{CancelReason, RejectReason};
use proptest::prelude::*;
use proptest::sample::select;

fn alpha<const N: usize>() -> impl Strategy<Value = Alpha<N>> {
    proptest::collection::vec(0x20u8..0x7f, N).prop_map(|v| {
        let mut a = [b' '; N];
        a.copy_from_slice(&v);
        Alpha(a)
    })
}

fn token() -> impl Strategy<Value = Token> {
    alpha::<14>()
}

fn terms() -> impl Strategy<Value = OrderTerms> {
    (
        (
            select(Side::ALL),
            any::<u32>(),
            alpha::<8>(),
            any::<u32>(),
            any::<u32>(),
            alpha::<4>(),
        ),
        (
            select(Display::ALL),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
            any::<u8>(),
        ),
    )
        .prop_map(
            |(
                (side, shares, stock, price, time_in_force, firm),
                (display, capacity, intermarket_sweep, minimum_quantity, cross_type),
            ): ((Side, u32, Symbol, u32, u32, Firm), _)| OrderTerms {
                side,
                shares,
                stock,
                price,
                time_in_force,
                firm,
                display,
                capacity,
                intermarket_sweep,
                minimum_quantity,
                cross_type,
            },
        )
}

fn inbound() -> impl Strategy<Value = InboundMessage> {
    prop_oneof![
        (token(), terms(), any::<u8>())
            .prop_map(|(t, terms, c)| InboundMessage::EnterOrder(EnterOrder::new(t, &terms, c))),
        (
            (token(), token(), any::<u32>(), any::<u32>(), any::<u32>()),
            (select(Display::ALL), any::<u8>(), any::<u32>())
        )
            .prop_map(|((e, r, shares, price, tif), (d, iso, min))| {
                InboundMessage::ReplaceOrder(ReplaceOrder::new(e, r, shares, price, tif, d, iso, min))
            }),
        (token(), any::<u32>()).prop_map(|(t, s)| InboundMessage::CancelOrder(CancelOrder::new(t, s))),
        (token(), select(Side::ALL), any::<u32>())
            .prop_map(|(t, side, s)| InboundMessage::ModifyOrder(ModifyOrder::new(t, side, s))),
    ]
}

fn outbound() -> impl Strategy<Value = OutboundMessage> {
    let ts = any::<u64>;
    prop_oneof![
        (ts(), select(EventCode::ALL)).prop_map(|(t, e)| SystemEvent::new(t, e).into()),
        (ts(), token(), terms(), any::<u64>(), select(OrderState::ALL))
            .prop_map(|(t, k, terms, r, s)| Accepted::new(t, k, &terms, r, s).into()),
        (
            ts(),
            token(),
            terms(),
            any::<u64>(),
            select(OrderState::ALL),
            token()
        )
            .prop_map(|(t, k, terms, r, s, p)| Replaced::new(t, k, &terms, r, s, p).into()),
        (ts(), token(), any::<u32>(), select(CancelReason::ALL))
            .prop_map(|(t, k, d, r)| Canceled::new(t, k, d, r).into()),
        (
            (ts(), token(), any::<u32>(), select(CancelReason::ALL)),
            (any::<u32>(), any::<u32>(), select(LiquidityFlag::ALL))
        )
            .prop_map(|((t, k, d, r), (q, p, l))| AiqCanceled::new(t, k, d, r, q, p, l).into()),
        (
            ts(),
            token(),
            any::<u32>(),
            any::<u32>(),
            select(LiquidityFlag::ALL),
            any::<u64>()
        )
            .prop_map(|(t, k, s, p, l, m)| Executed::new(t, k, s, p, l, m).into()),
        (ts(), token(), any::<u64>(), select(BrokenTradeReason::ALL))
            .prop_map(|(t, k, m, r)| BrokenTrade::new(t, k, m, r).into()),
        (
            ts(),
            token(),
            any::<u64>(),
            any::<u32>(),
            select(BrokenTradeReason::ALL)
        )
            .prop_map(|(t, k, m, p, r)| PriceCorrection::new(t, k, m, p, r).into()),
        (ts(), token(), select(RejectReason::ALL)).prop_map(|(t, k, r)| Rejected::new(t, k, r).into()),
        (ts(), token()).prop_map(|(t, k)| CancelPending::new(t, k).into()),
        (ts(), token()).prop_map(|(t, k)| CancelReject::new(t, k).into()),
        (ts(), token(), select(Side::ALL), any::<u32>())
            .prop_map(|(t, k, side, s)| OrderModified::new(t, k, side, s).into()),
    ]
}

proptest! {
    #[test]
    fn inbound_decode_of_encode_is_identity(m in inbound()) {
        let mut out = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut out).unwrap();
        prop_assert_eq!(Inbound::decode(&out[..len]).map(|d| d.to_message()), Ok(m));
        prop_assert_eq!(m.as_inbound().as_wire(), &out[..len]);
        prop_assert!(fuzz_check_inbound(&out[..len]));
    }

    #[test]
    fn outbound_decode_of_encode_is_identity(m in outbound()) {
        let mut out = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut out).unwrap();
        prop_assert_eq!(Outbound::decode(&out[..len]).map(|d| d.to_message()), Ok(m));
        prop_assert_eq!(m.as_wire(), &out[..len]);
        fuzz_check_inbound(&out[..len]);
    }

    #[test]
    fn outbound_encode_in_place_writes_the_bytes_of_encode(m in outbound(), garbage in any::<u8>(), short in any::<prop::sample::Index>()) {
        // The in-place path over a buffer full of garbage must leave exactly encode's bytes: every byte written.
        let mut expected = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut expected).unwrap();
        let mut out = [garbage; MESSAGE_LEN_MAX];
        prop_assert_eq!(m.encode_in_place(&mut out), Ok(len));
        prop_assert_eq!(&out[..len], &expected[..len]);
        prop_assert!(out[len..].iter().all(|&b| b == garbage), "nothing written past the message");
        // A short buffer is an error and is left untouched.
        let mut small = [garbage; MESSAGE_LEN_MAX];
        let short_len = short.index(len);
        prop_assert_eq!(
            m.encode_in_place(&mut small[..short_len]),
            Err(EncodeError { needed: len, available: short_len })
        );
        prop_assert!(small.iter().all(|&b| b == garbage));
    }

    #[test]
    fn inbound_encode_in_place_writes_the_bytes_of_encode(m in inbound(), garbage in any::<u8>()) {
        let mut expected = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut expected).unwrap();
        let mut out = [garbage; MESSAGE_LEN_MAX];
        prop_assert_eq!(m.encode_in_place(&mut out), Ok(len));
        prop_assert_eq!(&out[..len], &expected[..len]);
        prop_assert!(out[len..].iter().all(|&b| b == garbage));
    }

    #[test]
    fn constructed_replies_encode_in_place_as_encode(t in terms(), k in token(), ts in any::<u64>(), n in any::<u64>(), s in any::<u32>(), garbage in any::<u8>()) {
        // The server's form: constructor straight into the output buffer, per message type.
        fn same<M: Message>(m: M, garbage: u8) -> bool {
            let mut out = [garbage; MESSAGE_LEN_MAX];
            m.encode_in_place(&mut out) == Ok(M::LEN) && out[..M::LEN] == *m.as_wire()
        }
        prop_assert!(same(EnterOrder::new(k, &t, b'R'), garbage));
        prop_assert!(same(Accepted::new(ts, k, &t, n, OrderState::Live), garbage));
        prop_assert!(same(Replaced::new(ts, k, &t, n, OrderState::Live, k), garbage));
        prop_assert!(same(Executed::new(ts, k, s, t.price, LiquidityFlag::Added, n), garbage));
        prop_assert!(same(Canceled::new(ts, k, s, CancelReason::UserRequested), garbage));
        prop_assert!(same(Rejected::new(ts, k, RejectReason::InvalidPrice), garbage));
    }

    #[test]
    fn terms_survive_enter_accepted_and_replaced(t in terms(), k in token(), ts in any::<u64>()) {
        prop_assert_eq!(EnterOrder::new(k, &t, b' ').terms(), t);
        prop_assert_eq!(Accepted::new(ts, k, &t, 1, OrderState::Live).terms(), t);
        prop_assert_eq!(Replaced::new(ts, k, &t, 1, OrderState::Dead, k).terms(), t);
    }

    #[test]
    fn decoders_never_panic_and_fail_consistently(input in proptest::collection::vec(any::<u8>(), 0..90)) {
        fuzz_check_inbound(&input);
    }

    #[test]
    fn one_flipped_byte_is_decoded_or_named(m in inbound(), at in any::<proptest::sample::Index>(), byte in any::<u8>()) {
        let mut out = [0u8; MESSAGE_LEN_MAX];
        let len = m.encode(&mut out).unwrap();
        out[at.index(len)] = byte;
        fuzz_check_inbound(&out[..len]);
    }
}
