//! Tools over event histories (JSONL now; journals later).
