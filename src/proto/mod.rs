//! Wire protocols. `tokenizer` splits a request line the way memcached 1.6.45's parser does;
//! `text` runs ASCII commands against the server; `binary` the binary protocol; `meta` the meta commands (mg, ms, md, ma,
//! mn, me).

pub mod binary;
pub mod meta;
pub mod text;
pub mod tokenizer;
