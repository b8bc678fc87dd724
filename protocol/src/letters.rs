//! `letter_enum!`: one definition for every one-letter wire code (OUCH sides, displays, reasons; ITCH sides,
//! event codes, trading states): a `#[repr(u8)]` enum whose discriminant is the wire letter, with `ALL`,
//! `code`, `from_code` and a `Display` that prints the letter. Callers add their own derives.

macro_rules! letter_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $code ),+
        }

        impl core::fmt::Display for $name {
            /// The wire letter.
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Write::write_char(f, char::from(self.code()))
            }
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The letter on the wire.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The value for a wire letter, or `None` for a letter this field does not define.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }
    };
}
