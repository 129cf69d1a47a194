#!/usr/bin/env python3
"""check_header.py — checks that weft's public header keeps the contract it promises.

    scripts/check_header.py [INCLUDE_DIR]      (default: include/ beside scripts/)

include/weft.h is the one header users include; it includes include/weft/*.h, one file
per area. Every public function — declared with WEFT_API, a `static inline` helper, or a
function-like macro named weft_* — must have a doc comment right above it (a comment may
cover several consecutive declarations if it names each of them) with the labelled
lines "Returns:", "Suspends:" and "Errors:", and "On cancel:" whenever Suspends says
anything but "never". A label starts a line of the comment and may carry a note in
parentheses before its colon ("Errors (NULL returned): ...").

It also checks the files themselves: each sub-header opens with a comment that names it
("weft/<name>.h — its one job") and says "include <weft.h>, not this file", has its own
include guard, and is included by weft.h.

Prints one line per problem (file:line: function: what is missing), then a summary, and
exits 1 if there was any problem. Python 3 standard library only.
"""

import os
import re
import sys

LABELS = ("Returns", "Suspends", "Errors", "On cancel")

# A label at the start of a comment line: "Errors:" or "Errors (NULL returned):".
LABEL_RE = re.compile(r"^(Returns|Suspends|Errors|On cancel)(\s*\([^()]*(\([^()]*\)[^()]*)*\))?:\s*(.*)$")

DECL_WEFT_API = re.compile(r"^\s*(?:extern\s+)?WEFT_API\b")
DECL_INLINE = re.compile(r"^\s*static\s+inline\b")
DECL_MACRO = re.compile(r"^\s*#\s*define\s+(weft_[a-z0-9_]*)\(")
FUNC_NAME = re.compile(r"\b(weft_[A-Za-z0-9_]*)\s*\(")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*[<"]weft/([A-Za-z0-9_.-]+\.h)[>"]', re.M)


class Comment:
    def __init__(self, start, end, text, own_lines):
        self.start = start          # first line (1-based)
        self.end = end              # last line
        self.text = text            # the comment, /* and */ included
        self.own_lines = own_lines  # nothing but blanks before it and after it on its lines

    def lines(self):
        """The comment's lines without the comment markers and the leading ' * '."""
        body = self.text[2:-2]
        out = []
        for line in body.split("\n"):
            line = line.strip()
            if line.startswith("*"):
                line = line[1:].strip()
            out.append(line)
        return out


def lex(text):
    """Returns (comments, code): the comments of a C file, and its text with every
    comment blanked out (newlines kept), so that code can be read line by line."""
    comments = []
    code = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                end = n - 2
            chunk = text[i:end + 2]
            start_line = line
            line += chunk.count("\n")
            before = text[text.rfind("\n", 0, i) + 1:i]
            after_end = text.find("\n", end + 2)
            after = text[end + 2:after_end if after_end >= 0 else n]
            comments.append(Comment(start_line, line, chunk, not before.strip() and not after.strip()))
            code.append("".join("\n" if ch == "\n" else " " for ch in chunk))
            i = end + 2
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            code.append(" " * (end - i))
            i = end
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            code.append(text[i:j + 1])
            line += text[i:j + 1].count("\n")
            i = j + 1
            continue
        if c == "\n":
            line += 1
        code.append(c)
        i += 1
    return comments, "".join(code).split("\n")


class Decl:
    def __init__(self, names, start, end, kind):
        self.names = names  # function names (one, except for odd multi-declarations)
        self.start = start
        self.end = end
        self.kind = kind


def find_decls(code_lines):
    """The public function declarations of a file, in order."""
    decls = []
    i = 0
    while i < len(code_lines):
        line = code_lines[i]
        m = DECL_MACRO.match(line)
        if m:
            end = i
            while code_lines[end].rstrip().endswith("\\") and end + 1 < len(code_lines):
                end += 1
            decls.append(Decl([m.group(1)], i + 1, end + 1, "macro"))
            i = end + 1
            continue
        if DECL_WEFT_API.match(line) or DECL_INLINE.match(line):
            stop = ";" if DECL_WEFT_API.match(line) else "{;"
            end = i
            text = line
            while not any(ch in text for ch in stop) and end + 1 < len(code_lines):
                end += 1
                text += " " + code_lines[end]
            head = text.split("(", 1)[0] + "("
            m = FUNC_NAME.search(head)
            if m:
                decls.append(Decl([m.group(1)], i + 1, end + 1, "inline" if stop != ";" else "api"))
            i = end + 1
            continue
        i += 1
    return decls


def labelled(comment):
    """{label: text after its colon} for the labels that start a line of the comment
    (the first occurrence of each), with continuation lines joined."""
    found = {}
    current = None
    for line in comment.lines():
        m = LABEL_RE.match(line)
        if m:
            current = m.group(1)
            if current not in found:
                found[current] = m.group(4)
            else:
                current = None
        elif current and line:
            found[current] += " " + line
        else:
            current = None
    return found


def check_file(path, shown, problems):
    """Checks the declarations of one header; returns them."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    comments, code = lex(text)
    by_end = {c.end: c for c in comments if c.own_lines}
    decls = find_decls(code)
    ends = {d.end: d for d in decls}
    starts = {d.start: d for d in decls}
    for d in decls:
        # The run of declarations this one belongs to: declarations on consecutive
        # lines, with nothing between them, share the comment above the first.
        first = d
        while first.start - 1 in ends:
            first = ends[first.start - 1]
        group = [first]
        while group[-1].end + 1 in starts:
            group.append(starts[group[-1].end + 1])
        for name in d.names:
            where = "%s:%d: %s:" % (shown, d.start, name)
            doc = by_end.get(first.start - 1)
            if doc is None:
                problems.append("%s no doc comment right above the declaration" % where)
                continue
            if not re.search(r"\b%s\b" % re.escape(name), doc.text):
                if len(group) > 1:
                    problems.append("%s the comment above shares %d declarations but does not name this one"
                                    % (where, len(group)))
                else:
                    problems.append("%s the comment above does not name the function" % where)
            labels = labelled(doc)
            for label in ("Returns", "Suspends", "Errors"):
                if label not in labels:
                    problems.append('%s missing "%s:"' % (where, label))
            suspends = labels.get("Suspends")
            if suspends is not None:
                first_word = re.sub(r"[^a-z]", "", (suspends.split() or [""])[0].lower())
                if not suspends.strip():
                    problems.append('%s "Suspends:" is empty' % where)
                elif first_word != "never" and "On cancel" not in labels:
                    problems.append('%s missing "On cancel:" (it suspends: "Suspends: %s")'
                                    % (where, " ".join(suspends.split())[:60]))
    return decls


def check_subheader(path, shown, name, problems):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    comments, code = lex(text)
    first_code = next((i + 1 for i, line in enumerate(code) if line.strip()), None)
    opening = comments[0] if comments else None
    if opening is None or (first_code is not None and first_code < opening.start):
        problems.append("%s:1: the file must open with a comment saying its one job" % shown)
    else:
        body = " ".join(" ".join(opening.lines()).split())
        if not re.match(r"^weft/%s\s+—\s+\S" % re.escape(name), body):
            problems.append('%s:%d: the opening comment must start "weft/%s — <its one job>"'
                            % (shown, opening.start, name))
        if "include <weft.h>, not this file" not in body:
            problems.append('%s:%d: the opening comment must say "include <weft.h>, not this file"'
                            % (shown, opening.start))
    code_lines = [line.strip() for line in code if line.strip()]
    guard = None
    if len(code_lines) >= 2:
        m1 = re.match(r"#\s*ifndef\s+(\w+)$", code_lines[0])
        m2 = re.match(r"#\s*define\s+(\w+)$", code_lines[1])
        if m1 and m2 and m1.group(1) == m2.group(1):
            guard = m1.group(1)
    if guard is not None:
        # The guard's #endif must be the last line: the #if depth first returns to 0 there.
        depth = 0
        for k, line in enumerate(code_lines):
            if re.match(r"#\s*if(n?def)?\b", line):
                depth += 1
            elif re.match(r"#\s*endif\b", line):
                depth -= 1
                if depth == 0 and k != len(code_lines) - 1:
                    guard = None
                    break
        if depth != 0:
            guard = None
    if guard is None:
        problems.append("%s: no include guard (#ifndef X / #define X first, its #endif last)" % shown)
    return guard


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    include = argv[1] if len(argv) > 1 else os.path.join(here, "..", "include")
    top = os.path.join(include, "weft.h")
    subdir = os.path.join(include, "weft")
    if not os.path.isfile(top):
        print("check_header: %s not found" % top, file=sys.stderr)
        return 2
    cwd = os.getcwd()

    def shown(p):
        rel = os.path.relpath(p, cwd)
        return rel if not rel.startswith("..") else p

    subs = sorted(f for f in os.listdir(subdir) if f.endswith(".h")) if os.path.isdir(subdir) else []
    problems = []

    with open(top, encoding="utf-8") as f:
        top_text = f.read()
    _, top_code = lex(top_text)
    included = INCLUDE_RE.findall("\n".join(top_code))
    for name in subs:
        if name not in included:
            problems.append('%s: does not include weft/%s (add #include "weft/%s")' % (shown(top), name, name))
    for name in included:
        if name not in subs:
            problems.append("%s: includes weft/%s, which does not exist" % (shown(top), name))

    guards = {}
    functions = 0
    seen = {}
    for path in [top] + [os.path.join(subdir, s) for s in subs]:
        if path != top:
            name = os.path.basename(path)
            guard = check_subheader(path, shown(path), name, problems)
            if guard:
                if guard in guards:
                    problems.append("%s: include guard %s is also %s's" % (shown(path), guard, guards[guard]))
                guards[guard] = name
        for d in check_file(path, shown(path), problems):
            for n in d.names:
                functions += 1
                if n in seen:
                    problems.append("%s:%d: %s: declared again (first at %s)" % (shown(path), d.start, n, seen[n]))
                seen.setdefault(n, "%s:%d" % (shown(path), d.start))

    for p in problems:
        print(p)
    files = 1 + len(subs)
    if problems:
        print("check_header: FAILED: %d problem%s in %d functions of %d headers"
              % (len(problems), "" if len(problems) == 1 else "s", functions, files))
        return 1
    print("check_header: ok: %d functions checked in %d headers (weft.h and weft/*.h): each has Returns, "
          "Suspends, Errors, and On cancel where it suspends" % (functions, files))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
