#!/usr/bin/env bash
# Writes the manual pages into OUTDIR: saliency.1 and saliency-COMMAND.1 from the built CLI's own
# --help text (so a page cannot drift from the program), saliency-methods.1 also lists the method
# table, and libsaliency.3 from the comments of the public header. Usage: man.sh BIN HEADER OUTDIR
set -eu
bin=$1 header=$2 out=$3
mkdir -p "$out"
version=$("$bin" --version | awk '{print $2}')
# a fixed date (the header's last change, else the build's SOURCE_DATE_EPOCH) keeps builds reproducible
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(stat -c %Y "$header")}" +%Y-%m-%d)

# Plain text to roff: backslashes, minus signs (options must copy and paste), leading dots and quotes.
esc='function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); sub(/^[.'"'"']/, "\\\\\\&&", s); return s }'

# One help text (stdin) to a page. The first "usage:" lines are the synopsis; lines indented by two
# spaces are items "TERM  DESCRIPTION" (a second "  --opt" inside the description starts another
# item; "  1. text" is a numbered item), deeper ones continue the item, unindented lines are prose
# (a line ending in ':' of at most three words before items titles them), blank lines separate paragraphs.
help2man='
'"$esc"'
function flush() { if (item != "") { print ".TP"; print "\\fB" esc(term) "\\fR"; if (desc != "") print esc(desc) } item = "" }
function add_item(t, d) { flush(); if (ip) print ".PP"; ip = 0; term = t; desc = d; item = "x" }
function split_item(s,   w) { # "TERM  DESC": returns TERM, sets rest to DESC
    if (match(s, /  +/)) { rest = substr(s, RSTART + RLENGTH); return substr(s, 1, RSTART - 1) }
    # no gap: "--opt VALUE desc" or "--flag desc", a VALUE being capitals or holding one of |=[,
    if (s ~ /^-/ && split(s, w, " ") > 2) {
        t = (w[2] ~ /^[A-Z]|[|=[,]/) ? w[1] " " w[2] : w[1]
        rest = substr(s, length(t) + 2); return t
    }
    if (s !~ /^-/ && split(s, w, " ") > 1) { rest = substr(s, length(w[1]) + 2); return w[1] } # "visualize feature ..."
    rest = ""; return s
}
function items(s,   t, d) {
    t = split_item(substr(s, 3)); d = rest
    while (d ~ /^-/) { t = t ", " split_item(d); d = rest }  # "--l1 W  --l2 W   weights of"
    while (match(d, /  +-/)) {                               # "the report   --csv FILE   results"
        add_item(t, substr(d, 1, RSTART - 1)); t = split_item(substr(d, RSTART + RLENGTH - 1)); d = rest
    }
    add_item(t, d)
}
BEGIN { state = "start" }
function prose(s,   was) { was = item != ""; flush(); if (para || was) print ".PP"; para = 0; print esc(s) }
state == "start" && /^usage: / { sub(/^usage: /, ""); print ".SH SYNOPSIS"; print ".nf"; print esc($0); state = "usage"; next }
state == "usage" && /^ +saliency / { sub(/^ +/, ""); print esc($0); next }
state == "usage" { print ".fi"; print ".SH DESCRIPTION"; state = "body"; para = 0 }
held != "" { h = held; sub(/ *\(.*/, "", h); if (/^  [^ ]/ && split(h, hw, " ") <= 3) { flush(); print ".SS " esc(substr(held, 1, length(held) - 1)); para = 0 } else prose(held); held = "" }
/^$/ { flush(); para = 1; next }
/^  [0-9]+\. / { flush(); n = $1; sub(/^  [0-9]+\. /, ""); print ".IP " n " 4"; ip = 1; print esc($0); next }
/^  [^ ]/ { items($0); next }
/^   / { sub(/^ +/, ""); if (item != "") desc = desc " " $0; else print esc($0); next }
/:$/ { held = $0; next }
{ prose($0) }
END { if (held != "") prose(held); flush(); if (state == "usage") print ".fi" }
'

# The command table of `saliency --help`: "name what" per line.
commands=$("$bin" --help | awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print}')

see_also() { # every page but $1, comma-separated
    { echo "saliency 1"; while read -r c _; do echo "saliency-$c 1"; done <<< "$commands"; echo "libsaliency 3"; } |
        awk -v self="$1" '$1 != self {printf "%s\\fB%s\\fR(%s)", n++ ? ",\n" : "", $1, $2} END {print ""}'
}

page() { # NAME WHAT HELP-TEXT-ON-STDIN
    local name=$1 what=$2
    printf '.TH %s 1 "%s" "saliency %s" "saliency manual"\n' "$(echo "$name" | tr a-z A-Z)" "$date" "$version"
    echo ".SH NAME"
    awk "$esc"' { print esc($0) }' <<< "$name - $what"
    # the default memory budget is the build machine's: leave its figure out of the page
    sed -E 's/, [0-9.]+G here\)/)/' | awk "$help2man"
}

"$bin" --help | sed 1,2d | page saliency "explain neural-network predictions and audit the explanations" > "$out/saliency.1"
{ echo ".SH SEE ALSO"; see_also saliency; } >> "$out/saliency.1"
while read -r cmd what; do
    f="$out/saliency-$cmd.1"
    "$bin" "$cmd" --help | page "saliency-$cmd" "$what" > "$f"
    if [ "$cmd" = methods ]; then # the table itself: "name", "    summary", "    --param k=v", "        help"
        echo ".SH METHODS" >> "$f"
        "$bin" methods | awk "$esc"'
            /^[^ ]/ { if (inp) print ".RE"; inp = 0; print ".TP"; print "\\fB" esc($0) "\\fR"; next }
            /^    --param/ { sub(/^ +/, ""); if (!inp) print ".RS"; inp = 1; print ".TP"; print "\\fB" esc($0) "\\fR"; next }
            { sub(/^ +/, ""); print esc($0) }
            END { if (inp) print ".RE" }' >> "$f"
    fi
    { echo ".SH SEE ALSO"; see_also "saliency-$cmd"; } >> "$f"
done <<< "$commands"

# libsaliency(3): the header's opening comment is the description; each "---- title ----" comment a
# section; other comments are prose and the declarations between them are shown as code.
{
    printf '.TH LIBSALIENCY 3 "%s" "saliency %s" "saliency manual"\n' "$date" "$version"
    echo ".SH NAME"
    echo "libsaliency \\- attribution methods for neural networks, and audits of whether to trust them"
    echo ".SH SYNOPSIS"
    echo ".nf"
    echo ".B #include <saliency.h>"
    echo ".PP"
    echo "cc prog.c \$(pkg\\-config \\-\\-cflags \\-\\-libs saliency)"
    echo "cc \\-static prog.c \$(pkg\\-config \\-\\-static \\-\\-cflags \\-\\-libs saliency)   # statically"
    echo ".fi"
    awk "$esc"'
        function code_end() { if (code) print ".fi"; code = 0 }
        NR == 1 { print ".SH DESCRIPTION"; head = 1; next }  # its first line is the NAME above
        head && /\*\// { head = 0; next }
        head { if (sub(/^ \* *- /, "")) print ".IP \\(bu 2"; else sub(/^ \* */, ""); print esc($0); next }
        /^#|^extern "C"|^}$|^$/ { next }
        depth == 0 && /^\/\* ----.*---- \*\/$/ { code_end(); t = $0; gsub(/^\/\* -+ | -+ \*\/$/, "", t); print ".SH " toupper(esc(t)); next }
        depth == 0 && /^ *\/\*/ { code_end(); print ".PP"; c = 1 }
        c { t = $0; sub(/^ *\/\* ?|^ *\* ?/, "", t); sub(/ *\*\/$/, "", t); if (t != "") print esc(t)
            if ($0 ~ /\*\//) c = 0
            next }
        { if (!code) { print ".PP"; print ".nf" } code = 1; print esc($0)
          t = $0; depth += gsub(/{/, "", t); t = $0; depth -= gsub(/}/, "", t) }
        END { code_end() }' "$header"
    echo ".SH SEE ALSO"
    see_also libsaliency
} > "$out/libsaliency.3"
