//! Where a run is between steps, and the one pure function that moves it on. The checkpoint is
//! committed with each step's data, so a transition here is also what a resumed run does next;
//! its JSON (`{"phase":"list","method":"FBR","page":2,"catch_up":false}`) outlives a release,
//! because runs in flight resume across upgrades, and so keeps its shape.

use serde::{Deserialize, Serialize};

use crate::domain::FulfilmentMethod;

/// Where a run is; committed with the data each step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub(super) enum Checkpoint {
    /// Listing `method` at `page`. `catch_up`: re-reading from page 1 until known shipments,
    /// because new arrivals shifted the pages during this crawl.
    List {
        method: FulfilmentMethod,
        page: u32,
        catch_up: bool,
    },
    Details,
}

impl Checkpoint {
    const START: Checkpoint = Checkpoint::List {
        method: FulfilmentMethod::Fbr,
        page: 1,
        catch_up: false,
    };

    /// Where a run goes on from: its stored checkpoint, or the start for a run that has none
    /// (or one this version cannot read).
    pub(super) fn resume(stored: Option<&str>) -> Checkpoint {
        stored
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Checkpoint::START)
    }

    /// The form the run row stores.
    pub(super) fn to_json(self) -> String {
        serde_json::to_string(&self).expect("checkpoints serialize")
    }

    fn after_method(method: FulfilmentMethod) -> Checkpoint {
        match method {
            FulfilmentMethod::Fbr => Checkpoint::List {
                method: FulfilmentMethod::Fbb,
                page: 1,
                catch_up: false,
            },
            FulfilmentMethod::Fbb => Checkpoint::Details,
        }
    }
}

/// A driver's place in the crawl: the stored checkpoint, and whether new arrivals shifted the
/// pages of the method being listed. Only the driver that saw the shift knows it: a resumed run
/// starts without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) checkpoint: Checkpoint,
    pub(super) shifted: bool,
}

impl Position {
    pub(super) fn resume(stored: Option<&str>) -> Position {
        Position {
            checkpoint: Checkpoint::resume(stored),
            shifted: false,
        }
    }
}

/// What a committed step says about where the crawl goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A list page. `is_last`: bol's last page (short, or empty); `shifted`: the page repeats
    /// shipments this driver listed on an earlier page; `reached_known`: some of its shipments
    /// were stored already (the step's transaction finds out).
    Page {
        is_last: bool,
        shifted: bool,
        reached_known: bool,
    },
    /// A batch of details.
    Details,
}

/// The position after a step. A method's listing ends at its last page, or, where the run stops
/// at known shipments (incremental, or catching up), at the first page that reaches them; a full
/// crawl whose pages shifted then reads the method again from page 1 until known shipments.
pub(super) fn next(position: Position, outcome: Outcome, incremental: bool) -> Position {
    let (
        Checkpoint::List {
            method,
            page,
            catch_up,
        },
        Outcome::Page {
            is_last,
            shifted,
            reached_known,
        },
    ) = (position.checkpoint, outcome)
    else {
        // Details leave the list where it is: they are fetched while it is read.
        return position;
    };
    let shifted = position.shifted || shifted;
    let stop_at_known = incremental || catch_up;
    let method_ends = is_last || (stop_at_known && reached_known);
    if !method_ends {
        let checkpoint = Checkpoint::List {
            method,
            page: page + 1,
            catch_up,
        };
        return Position {
            checkpoint,
            shifted,
        };
    }
    let checkpoint = if shifted && !stop_at_known {
        Checkpoint::List {
            method,
            page: 1,
            catch_up: true,
        }
    } else {
        Checkpoint::after_method(method)
    };
    Position {
        checkpoint,
        shifted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(method: FulfilmentMethod, page: u32, catch_up: bool) -> Position {
        Position {
            checkpoint: Checkpoint::List {
                method,
                page,
                catch_up,
            },
            shifted: false,
        }
    }

    fn page(is_last: bool, reached_known: bool) -> Outcome {
        Outcome::Page {
            is_last,
            shifted: false,
            reached_known,
        }
    }

    const FULL: bool = false;
    const INCREMENTAL: bool = true;

    #[test]
    fn a_full_page_moves_on_to_the_next_page() {
        let after = next(
            listing(FulfilmentMethod::Fbr, 3, false),
            page(false, false),
            FULL,
        );
        assert_eq!(after, listing(FulfilmentMethod::Fbr, 4, false));
    }

    #[test]
    fn the_last_fbr_page_moves_on_to_the_first_fbb_page() {
        let after = next(
            listing(FulfilmentMethod::Fbr, 3, false),
            page(true, false),
            FULL,
        );
        assert_eq!(after, listing(FulfilmentMethod::Fbb, 1, false));
    }

    #[test]
    fn the_last_fbb_page_moves_on_to_the_details() {
        let after = next(
            listing(FulfilmentMethod::Fbb, 1, false),
            page(true, false),
            FULL,
        );
        assert_eq!(after.checkpoint, Checkpoint::Details);
    }

    #[test]
    fn an_incremental_run_ends_a_method_at_the_first_page_with_known_shipments() {
        let after = next(
            listing(FulfilmentMethod::Fbr, 1, false),
            page(false, true),
            INCREMENTAL,
        );
        assert_eq!(after, listing(FulfilmentMethod::Fbb, 1, false));
    }

    #[test]
    fn a_full_run_reads_on_past_known_shipments() {
        let after = next(
            listing(FulfilmentMethod::Fbr, 1, false),
            page(false, true),
            FULL,
        );
        assert_eq!(after, listing(FulfilmentMethod::Fbr, 2, false));
    }

    #[test]
    fn a_shift_is_remembered_until_the_method_ends() {
        let shifted = Outcome::Page {
            is_last: false,
            shifted: true,
            reached_known: false,
        };
        let after = next(listing(FulfilmentMethod::Fbr, 2, false), shifted, FULL);
        assert_eq!(
            after.checkpoint,
            listing(FulfilmentMethod::Fbr, 3, false).checkpoint
        );
        assert!(after.shifted);
        let later = next(after, page(false, false), FULL);
        assert!(later.shifted);
    }

    #[test]
    fn a_shifted_full_crawl_reads_the_method_again_from_page_one_until_known_shipments() {
        let shifted = Position {
            shifted: true,
            ..listing(FulfilmentMethod::Fbr, 5, false)
        };
        let after = next(shifted, page(true, false), FULL);
        assert_eq!(after, listing(FulfilmentMethod::Fbr, 1, true));
    }

    #[test]
    fn a_catch_up_ends_at_known_shipments_and_moves_on() {
        let after = next(
            listing(FulfilmentMethod::Fbr, 1, true),
            page(false, true),
            FULL,
        );
        assert_eq!(after, listing(FulfilmentMethod::Fbb, 1, false));
    }

    #[test]
    fn a_catch_up_reads_on_while_every_shipment_is_new() {
        let after = next(
            listing(FulfilmentMethod::Fbb, 1, true),
            page(false, false),
            FULL,
        );
        assert_eq!(after, listing(FulfilmentMethod::Fbb, 2, true));
    }

    #[test]
    fn an_incremental_run_never_catches_up_because_it_stops_at_known_shipments_anyway() {
        let shifted = Position {
            shifted: true,
            ..listing(FulfilmentMethod::Fbb, 2, false)
        };
        let after = next(shifted, page(true, false), INCREMENTAL);
        assert_eq!(after.checkpoint, Checkpoint::Details);
    }

    #[test]
    fn details_leave_the_position_where_it_is() {
        for position in [
            listing(FulfilmentMethod::Fbr, 2, false),
            Position {
                checkpoint: Checkpoint::Details,
                shifted: false,
            },
        ] {
            assert_eq!(next(position, Outcome::Details, FULL), position);
        }
    }

    #[test]
    fn the_stored_json_keeps_the_shape_that_runs_in_flight_resume_from() {
        let list = Checkpoint::List {
            method: FulfilmentMethod::Fbb,
            page: 7,
            catch_up: true,
        };
        let json = r#"{"phase":"list","method":"FBB","page":7,"catch_up":true}"#;
        assert_eq!(list.to_json(), json);
        assert_eq!(Checkpoint::resume(Some(json)), list);
        assert_eq!(Checkpoint::Details.to_json(), r#"{"phase":"details"}"#);
        assert_eq!(
            Checkpoint::resume(Some(r#"{"phase":"details"}"#)),
            Checkpoint::Details
        );
    }

    #[test]
    fn a_run_without_a_readable_checkpoint_starts_at_the_first_fbr_page() {
        let start = listing(FulfilmentMethod::Fbr, 1, false).checkpoint;
        assert_eq!(Checkpoint::resume(None), start);
        assert_eq!(Checkpoint::resume(Some("{\"phase\":\"later\"}")), start);
    }
}
