//! A command-line scanner that behaves like glibc's `getopt_long` (2.26 and later) for the
//! way memcached calls it: short-option bundling (`-vv`, `-p11211`), attached or separate
//! arguments, `--name=value` and `--name value`, unambiguous prefixes of long names,
//! argument permutation (non-options are skipped, or end the scan when `POSIXLY_CORRECT`
//! is set), `--` as end of options, and glibc's diagnostics word for word.
//!
//! Arguments are handled as bytes, as C sees them; an option argument is handed back as the
//! remaining bytes of its argv element.

/// Whether a long option takes an argument (`struct option.has_arg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HasArg {
    No,
    Required,
    Optional,
}

/// One entry of the long option table.
#[derive(Debug, Clone, Copy)]
pub struct LongOpt {
    pub name: &'static str,
    pub has_arg: HasArg,
    /// The short option character this long option stands for.
    pub val: u8,
}

/// What one step of the scan produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// An option (its short character) and its argument, if it has one.
    Opt(u8, Option<&'a [u8]>),
    /// A malformed option; the payload is glibc's complete diagnostic line (with newline).
    /// getopt returns '?' in this case.
    Error(Vec<u8>),
}

pub struct Getopt<'a> {
    args: &'a [String],
    shortopts: &'static [u8],
    longopts: &'static [LongOpt],
    /// Stop at the first non-option instead of skipping it (POSIXLY_CORRECT).
    require_order: bool,
    /// Index of the argv element being scanned.
    optind: usize,
    /// Offset of the next short option character inside `args[optind]`, while inside a
    /// bundle of short options.
    nextchar: Option<usize>,
    done: bool,
}

impl<'a> Getopt<'a> {
    pub fn new(
        args: &'a [String],
        shortopts: &'static [u8],
        longopts: &'static [LongOpt],
        require_order: bool,
    ) -> Self {
        Getopt {
            args,
            shortopts,
            longopts,
            require_order,
            optind: 1,
            nextchar: None,
            done: false,
        }
    }

    fn arg(&self, i: usize) -> &'a [u8] {
        self.args.get(i).map_or(&[][..], |s| s.as_bytes())
    }

    fn progname(&self) -> &'a [u8] {
        self.arg(0)
    }

    /// How a short option character is declared: None if unknown, else Some(takes_arg).
    fn short_spec(&self, c: u8) -> Option<HasArg> {
        if c == b':' || c == b';' {
            return None;
        }
        let pos = self.shortopts.iter().position(|&b| b == c)?;
        let colons = self.shortopts[pos + 1..]
            .iter()
            .take(2)
            .take_while(|&&b| b == b':')
            .count();
        Some(match colons {
            0 => HasArg::No,
            1 => HasArg::Required,
            _ => HasArg::Optional,
        })
    }

    fn error(&self, parts: &[&[u8]]) -> Item<'a> {
        let mut msg = self.progname().to_vec();
        msg.extend_from_slice(b": ");
        for p in parts {
            msg.extend_from_slice(p);
        }
        msg.push(b'\n');
        Item::Error(msg)
    }

    fn next_short(&mut self, pos: usize) -> Item<'a> {
        let cur = self.arg(self.optind);
        let c = cur[pos];
        let rest = pos + 1;
        let at_end = rest >= cur.len();
        if at_end {
            self.optind += 1;
            self.nextchar = None;
        } else {
            self.nextchar = Some(rest);
        }
        let Some(spec) = self.short_spec(c) else {
            return self.error(&[b"invalid option -- '", &[c], b"'"]);
        };
        match spec {
            HasArg::No => Item::Opt(c, None),
            HasArg::Optional => {
                self.nextchar = None;
                if at_end {
                    Item::Opt(c, None)
                } else {
                    self.optind += 1;
                    Item::Opt(c, Some(&cur[rest..]))
                }
            }
            HasArg::Required => {
                self.nextchar = None;
                if !at_end {
                    self.optind += 1;
                    Item::Opt(c, Some(&cur[rest..]))
                } else if self.optind >= self.args.len() {
                    self.error(&[b"option requires an argument -- '", &[c], b"'"])
                } else {
                    let optarg = self.arg(self.optind);
                    self.optind += 1;
                    Item::Opt(c, Some(optarg))
                }
            }
        }
    }

    /// `body` is the argv element without its leading "--".
    fn next_long(&mut self, body: &'a [u8]) -> Item<'a> {
        self.optind += 1;
        let name_len = body.iter().position(|&b| b == b'=').unwrap_or(body.len());
        let name = &body[..name_len];
        let value = body.get(name_len + 1..).filter(|_| name_len < body.len());

        let exact = self.longopts.iter().find(|o| o.name.as_bytes() == name);
        let found = match exact {
            Some(o) => o,
            None => {
                let matches: Vec<&LongOpt> = self
                    .longopts
                    .iter()
                    .filter(|o| o.name.as_bytes().starts_with(name))
                    .collect();
                let Some(&first) = matches.first() else {
                    return self.error(&[b"unrecognized option '--", body, b"'"]);
                };
                // Prefix matches that all mean the same thing are not ambiguous.
                let differ = matches
                    .iter()
                    .any(|o| o.has_arg != first.has_arg || o.val != first.val);
                if differ {
                    let mut parts: Vec<&[u8]> =
                        vec![b"option '--", body, b"' is ambiguous; possibilities:"];
                    for o in &matches {
                        parts.extend_from_slice(&[b" '--", o.name.as_bytes(), b"'"]);
                    }
                    return self.error(&parts);
                }
                first
            }
        };

        match (found.has_arg, value) {
            (HasArg::No, Some(_)) => self.error(&[
                b"option '--",
                found.name.as_bytes(),
                b"' doesn't allow an argument",
            ]),
            (_, Some(v)) => Item::Opt(found.val, Some(v)),
            (HasArg::Required, None) => {
                if self.optind < self.args.len() {
                    let optarg = self.arg(self.optind);
                    self.optind += 1;
                    Item::Opt(found.val, Some(optarg))
                } else {
                    self.error(&[
                        b"option '--",
                        found.name.as_bytes(),
                        b"' requires an argument",
                    ])
                }
            }
            (_, None) => Item::Opt(found.val, None),
        }
    }
}

impl<'a> Iterator for Getopt<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        if self.done {
            return None;
        }
        if let Some(pos) = self.nextchar {
            return Some(self.next_short(pos));
        }
        loop {
            if self.optind >= self.args.len() {
                self.done = true;
                return None;
            }
            let cur = self.arg(self.optind);
            if cur == b"--" {
                self.optind += 1;
                self.done = true;
                return None;
            }
            let is_option = cur.len() > 1 && cur[0] == b'-';
            if is_option {
                break;
            }
            if self.require_order {
                self.done = true;
                return None;
            }
            // Permutation: a non-option is passed over (memcached never looks at it).
            self.optind += 1;
        }
        let cur = self.arg(self.optind);
        if cur[1] == b'-' {
            return Some(self.next_long(&cur[2..]));
        }
        Some(self.next_short(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &[LongOpt] = &[
        LongOpt {
            name: "port",
            has_arg: HasArg::Required,
            val: b'p',
        },
        LongOpt {
            name: "version",
            has_arg: HasArg::No,
            val: b'V',
        },
        LongOpt {
            name: "verbose",
            has_arg: HasArg::Optional,
            val: b'v',
        },
    ];

    fn run(args: &[&str], posix: bool) -> Vec<Item<'static>> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let args: &'static [String] = Box::leak(args.into_boxed_slice());
        Getopt::new(args, b"p:vVo:", LONG, posix).collect()
    }

    fn err(s: &str) -> Item<'static> {
        Item::Error(s.as_bytes().to_vec())
    }

    #[test]
    fn bundles_and_attached_arguments() {
        assert_eq!(
            run(&["x", "-vvp11", "-p", "12", "-vp", "-v"], false),
            vec![
                Item::Opt(b'v', None),
                Item::Opt(b'v', None),
                Item::Opt(b'p', Some(&b"11"[..])),
                Item::Opt(b'p', Some(&b"12"[..])),
                Item::Opt(b'v', None),
                Item::Opt(b'p', Some(&b"-v"[..])),
            ]
        );
    }

    #[test]
    fn long_options_and_prefixes() {
        assert_eq!(
            run(
                &[
                    "x",
                    "--port=1",
                    "--port",
                    "2",
                    "--po",
                    "3",
                    "--verb",
                    "--verbose=9"
                ],
                false
            ),
            vec![
                Item::Opt(b'p', Some(&b"1"[..])),
                Item::Opt(b'p', Some(&b"2"[..])),
                Item::Opt(b'p', Some(&b"3"[..])),
                Item::Opt(b'v', None),
                Item::Opt(b'v', Some(&b"9"[..])),
            ]
        );
        assert_eq!(
            run(&["x", "--port="], false),
            vec![Item::Opt(b'p', Some(&b""[..]))]
        );
    }

    #[test]
    fn permutation_and_end_of_options() {
        assert_eq!(
            run(&["x", "a", "-", "-v", "b", "--", "-V"], false),
            vec![Item::Opt(b'v', None)]
        );
        assert_eq!(run(&["x", "a", "-v"], true), vec![]);
        assert_eq!(
            run(&["x", "-p", "--", "-v"], false),
            vec![Item::Opt(b'p', Some(&b"--"[..])), Item::Opt(b'v', None)]
        );
    }

    #[test]
    fn diagnostics() {
        assert_eq!(
            run(&["./mc", "-z"], false),
            vec![err("./mc: invalid option -- 'z'\n")]
        );
        assert_eq!(
            run(&["./mc", "-p"], false),
            vec![err("./mc: option requires an argument -- 'p'\n")]
        );
        assert_eq!(
            run(&["./mc", "--nope=3"], false),
            vec![err("./mc: unrecognized option '--nope=3'\n")]
        );
        assert_eq!(
            run(&["./mc", "--ver=1"], false),
            vec![err(
                "./mc: option '--ver=1' is ambiguous; possibilities: '--version' '--verbose'\n"
            )]
        );
        assert_eq!(
            run(&["./mc", "--vers=1"], false),
            vec![err("./mc: option '--version' doesn't allow an argument\n")]
        );
        assert_eq!(
            run(&["./mc", "--port"], false),
            vec![err("./mc: option '--port' requires an argument\n")]
        );
        assert_eq!(
            run(&["./mc", "-:"], false),
            vec![err("./mc: invalid option -- ':'\n")]
        );
    }
}
