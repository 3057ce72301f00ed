//! Domain values written as text (on the wire, in PostgreSQL, in the API): one list of
//! variant ⇄ text gives an enum its `ALL`, `as_str`, `Display` and `FromStr`, for the records
//! here and for the API's own enums alike.

/// `ALL`, `as_str`, `Display` and `FromStr` of an enum from its `Variant => "text"` list.
#[macro_export]
macro_rules! text_values {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        // Not every enum's text is read back in every crate.
        #[allow(dead_code)]
        impl $name {
            /// Every value, for documents that list them (the API's OpenAPI enums).
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", stringify!($name), " {:?} (expected one of: ", $($text, " "),+, ")"),
                        other
                    )),
                }
            }
        }
    };
}
