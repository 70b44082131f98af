//! [`text_enum!`](crate::text_enum): enums that are stored, shown and sent
//! by one fixed name per variant, written once instead of by hand per enum.

/// Declares a fieldless enum whose variants each have a fixed text: the
/// stored and displayed name, and the serde name. Generates `ALL` (every
/// variant in declaration order), `as_str`, `Display` and `FromStr` (which
/// names the accepted texts when it refuses one).
///
/// The calling crate needs `serde` (with `derive`) as a dependency.
///
/// ```
/// ordersaga_domain::text_enum!(
///     /// A traffic light.
///     Light {
///         /// Stop.
///         Red => "RED",
///         /// Go.
///         Green => "GREEN",
///     }
/// );
/// assert_eq!(Light::Red.as_str(), "RED");
/// assert_eq!("GREEN".parse::<Light>(), Ok(Light::Green));
/// assert_eq!(Light::ALL, &[Light::Red, Light::Green]);
/// ```
#[macro_export]
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored and displayed name.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        concat!(stringify!($name), " must be one of {:?}, got {:?}"),
                        [$($text),+], other.chars().take(32).collect::<String>()
                    )),
                }
            }
        }
    };
}
