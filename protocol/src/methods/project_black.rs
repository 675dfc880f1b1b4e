//! The project block list (a project-wide login block).

use serde::{Deserialize, Serialize};

use super::{Empty, Method, OkAnswer};

/// `addprojectblack {uid, btime}` → `{}`; `btime` ≤ 0 blocks permanently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddProjectBlack {
    /// User id.
    pub uid: i64,
    /// Duration in seconds; ≤ 0 means permanent.
    pub btime: i64,
}

impl Method for AddProjectBlack {
    const NAME: &'static str = "addprojectblack";
    type Answer = Empty;
}

/// `removeprojectblack {uid}` → `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveProjectBlack {
    /// User id.
    pub uid: i64,
}

impl Method for RemoveProjectBlack {
    const NAME: &'static str = "removeprojectblack";
    type Answer = Empty;
}

/// `isprojectblack {uid}` → `{ok}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsProjectBlack {
    /// User id.
    pub uid: i64,
}

impl Method for IsProjectBlack {
    const NAME: &'static str = "isprojectblack";
    type Answer = OkAnswer;
}
