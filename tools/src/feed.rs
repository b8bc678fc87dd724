//! feed (wip)
use crate::admin::GlobalOptions;
/// md args (wip)
#[derive(clap::Args, Debug)]
pub struct MdArgs {}
/// md (wip)
pub fn run_md(_args: &MdArgs, _options: &GlobalOptions) -> i32 {
    0
}
