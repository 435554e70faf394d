//! What became of a request, by name (DESIGN §13): the `outcome` of logs and of the
//! `apikey_requests_total` metric. Listed once, in [`outcome_list!`], so that the
//! rejection rows, the logs and the metrics' prebuilt keys cannot fall out of step.

/// Hands the outcomes, in order, to the macro `$then`: the one list that
/// [`Outcome`] and the metrics' keys are both built from.
macro_rules! outcome_list {
    ($then:ident) => {
        $then! {
            Accepted => "accepted",
            Missing => "missing",
            InvalidRequest => "invalid_request",
            InvalidKey => "invalid_key",
            Expired => "expired",
            Revoked => "revoked",
            InsufficientScope => "insufficient_scope",
            AddressNotAllowed => "address_not_allowed",
            RateLimited => "rate_limited",
            QuotaExceeded => "quota_exceeded",
            Throttled => "throttled",
            Overloaded => "overloaded",
            StoreUnavailable => "store_unavailable",
        }
    };
}
#[cfg(feature = "metrics")]
pub(crate) use outcome_list;

macro_rules! declare_outcomes {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// One outcome of a request. Several kinds of refusal share one (a rotation's
        /// end is `expired`, a bad checksum `invalid_key`): an outcome says what a
        /// dashboard needs, the [`RejectionKind`](crate::middleware::RejectionKind) the detail.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        // `Accepted` is named by the metrics only; refusals have their rows.
        #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
        pub(crate) enum Outcome {
            $($variant),*
        }

        impl Outcome {
            /// Every outcome, in the order of [`outcome_list!`] (which is also the
            /// order of their discriminants).
            #[cfg(test)]
            pub(crate) const ALL: &[Outcome] = &[$(Outcome::$variant),*];

            /// The outcome's name.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),*
                }
            }
        }
    };
}
outcome_list!(declare_outcomes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcomes_are_the_thirteen_of_design_section_13_in_order() {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "accepted",
                "missing",
                "invalid_request",
                "invalid_key",
                "expired",
                "revoked",
                "insufficient_scope",
                "address_not_allowed",
                "rate_limited",
                "quota_exceeded",
                "throttled",
                "overloaded",
                "store_unavailable",
            ]
        );
        for (index, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, index, "{outcome:?}");
        }
    }
}
