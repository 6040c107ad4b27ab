//! Declarative macros shared by every room: [`counter_enum!`](counter_enum), the tables of
//! counted kinds. They only generate code; nothing here runs or holds state.

/// Declares a counter enum from one list of `Kind => "label"` entries: the kinds of something
/// counted in a plain `[u64; N]` array and exported under a stable label (a metric's `kind` or
/// `reason`, a key of the summary). Modelled on smoltcp's `enum_with_unknown!`: the list is
/// written once, and the enum, its table and its names cannot drift apart.
///
/// Generated, for the enum `K`:
///
/// - `K::ALL: [K; N]`: every kind, in the list's order (the order summaries and metrics give);
/// - `K::COUNT: usize` (= `N` = `K::ALL.len()`): the length of a counter array;
/// - `K::index(self) -> usize`: the kind's position in `K::ALL`, to index a counter array;
/// - `K::as_str(self) -> &'static str`: its label;
/// - `impl Display for K`, writing the label.
///
/// # A plain enum, declared by the macro
///
/// Doc comments and attributes (derives, `#[non_exhaustive]`) go on the enum and on each kind
/// as usual; each kind is followed by `=> "label"`, and the variants are numbered from 0 in list
/// order. This is how `decode::TunnelKind` and `export::record::Anomaly` are declared:
///
/// ```ignore
/// use crate::macros::counter_enum;
///
/// counter_enum! {
///     /// Something a hostile or broken peer did, counted (`picket_anomalies_total{kind}`); the
///     /// flow goes on being tracked.
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Anomaly {
///         /// TCP segments whose bytes disagreed with bytes already reassembled.
///         ReassemblyConflict => "reassembly_conflict",
///         /// Segments dropped by the reassembly limit (16 KiB).
///         ReassemblyLimit => "reassembly_limit",
///         // ... one line per kind, in the order the summary lists them.
///     }
/// }
/// ```
///
/// (ignored as a doctest: the macro is private to the crate; `tests` below compile both forms.)
///
/// # Counted values of an enum declared elsewhere
///
/// When some kinds carry data — `decode::Skip::Truncated(DecodeLayer)` is one counted kind per
/// layer — declare the enum by hand and list every counted value after `impl`:
///
/// ```ignore
/// counter_enum! {
///     impl Skip {
///         NotIp => "not_ip",
///         Truncated(DecodeLayer::Link) => "truncated_link",
///         Truncated(DecodeLayer::Ip) => "truncated_ip",
///         // ...
///     }
/// }
/// ```
///
/// `index` and `as_str` are then `match`es over the listed values, so a value left out of the
/// list (a new variant, a new layer) fails to compile, and one listed twice is an unreachable
/// pattern (denied by CI's clippy).
macro_rules! counter_enum {
    // The end of the list: the accumulated array, index arms and label arms.
    (@munch $name:ident, $n:expr, [$($all:tt)*], [$($idx:tt)*], [$($lbl:tt)*],) => {
        impl $name {
            /// Every kind, in the order summaries and metrics list them.
            pub const ALL: [$name; $n] = [$($all)*];

            /// How many kinds there are: the length of a counter array.
            pub const COUNT: usize = $n;

            /// The kind's position in [`Self::ALL`], to index a counter array.
            pub const fn index(self) -> usize {
                match self {
                    $($idx)*
                }
            }

            /// A stable snake_case name, used as a metric label and in summaries.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($lbl)*
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    // One more listed value: its place in the array, its index `$n`, its label.
    (@munch $name:ident, $n:expr, [$($all:tt)*], [$($idx:tt)*], [$($lbl:tt)*],
        $variant:ident $(($($arg:tt)*))? => $label:literal, $($rest:tt)*) => {
        $crate::macros::counter_enum!(@munch $name, $n + 1,
            [$($all)* $name::$variant $(($($arg)*))?,],
            [$($idx)* $name::$variant $(($($arg)*))? => $n,],
            [$($lbl)* $name::$variant $(($($arg)*))? => $label,],
            $($rest)*);
    };
    // Counted values of an enum declared elsewhere.
    (impl $name:ident {
        $($variant:ident $(($($arg:tt)*))? => $label:literal),+ $(,)?
    }) => {
        $crate::macros::counter_enum!(@munch $name, 0usize, [], [], [],
            $($variant $(($($arg)*))? => $label,)+);
    };
    // A plain enum, declared here.
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $label:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        $crate::macros::counter_enum!(impl $name { $($variant => $label),+ });
    };
}

pub(crate) use counter_enum;

#[cfg(test)]
mod tests {
    // `counter_enum!` is in scope here as it is defined above; elsewhere
    // `use crate::macros::counter_enum;`.
    counter_enum! {
        /// A plain counter enum.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Fruit {
            /// Documented kind.
            Apple => "apple",
            Pear => "pear",
            Plum => "plum",
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Side {
        Left,
        Right,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Cut {
        Whole,
        Half(Side),
    }

    counter_enum! {
        impl Cut {
            Half(Side::Right) => "right_half",
            Whole => "whole",
            Half(Side::Left) => "left_half",
        }
    }

    #[test]
    fn counter_enum_plain_index_is_the_position_in_all() {
        assert_eq!(Fruit::COUNT, 3);
        assert_eq!(Fruit::ALL, [Fruit::Apple, Fruit::Pear, Fruit::Plum]);
        for (i, k) in Fruit::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        assert_eq!(Fruit::Pear.as_str(), "pear");
        assert_eq!(Fruit::Plum.to_string(), "plum");
    }

    #[test]
    fn counter_enum_values_keep_the_list_order_not_the_declaration_order() {
        assert_eq!(Cut::COUNT, 3);
        assert_eq!(
            Cut::ALL,
            [Cut::Half(Side::Right), Cut::Whole, Cut::Half(Side::Left)]
        );
        for (i, k) in Cut::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i, "{k}");
        }
        assert_eq!(Cut::Half(Side::Left).to_string(), "left_half");
        // Usable in constants.
        const SLOTS: [u64; Cut::COUNT] = [0; Cut::COUNT];
        assert_eq!(SLOTS.len(), Cut::ALL.len());
        const _: () = assert!(Cut::Whole.index() == 1);
    }
}
