//! Text conventions every stage shares: field names are camelCase on every topic (and in the
//! API), and domain values are text (on the wire, in PostgreSQL, in the API), where one list of
//! variant ⇄ text gives an enum its `ALL`, `as_str`, `Display` and `FromStr`, for the records
//! here and for the API's own enums alike.

/// A snake_case name (a SQL column) as the camelCase field name muster's records use.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_becomes_camel_case() {
        for (snake, camel) in [
            ("event_id", "eventId"),
            ("window_start", "windowStart"),
            ("entries", "entries"),
            ("peak_entries_per_minute", "peakEntriesPerMinute"),
        ] {
            assert_eq!(camel_case(snake), camel);
        }
    }
}
