//! The migrations are embedded at compile time (`sqlx::migrate!`), so a
//! new or changed file in `migrations/` must rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
