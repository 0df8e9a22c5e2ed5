// Command tlog_client checks a LER Anchor log served as C2SP tlog-tiles with Go's
// golang.org/x/mod/sumdb/tlog and sumdb/note: it verifies the checkpoint's signature, reads
// hash tiles over HTTP through tlog.TileHashReader (which checks every tile against the
// signed root), proves and checks inclusion of several leaves and consistency with an older
// signed checkpoint, and checks that the leaf hashes of entry bundles' entries are the
// level-0 tile hashes. It prints one summary line and exits 0, or says what failed and
// exits 1.
//
// Usage: tlog_client <base URL> <verifier key>
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8
const width = 1 << height

var base string

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlog_client: "+format+"\n", args...)
	os.Exit(1)
}

func get(path string) ([]byte, int) {
	resp, err := http.Get(base + path)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	return body, resp.StatusCode
}

// indexPath writes n in 3-digit elements, all but the last prefixed with x.
func indexPath(n int64) string {
	parts := []string{fmt.Sprintf("%03d", n%1000)}
	for n /= 1000; n > 0; n /= 1000 {
		parts = append([]string{fmt.Sprintf("x%03d", n%1000)}, parts...)
	}
	return strings.Join(parts, "/")
}

func tileURL(kind string, n int64, w int) string {
	p := "/tile/" + kind + "/" + indexPath(n)
	if w < width {
		p += ".p/" + strconv.Itoa(w)
	}
	return p
}

// httpTiles reads C2SP tiles (no height element in the path, unlike sumdb's tile/8/...).
type httpTiles struct{ fetched int }

func (h *httpTiles) Height() int { return height }

func (h *httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		body, status := get(tileURL(strconv.Itoa(t.L), t.N, t.W))
		if status != http.StatusOK {
			return nil, fmt.Errorf("tile %+v: HTTP %d: %s", t, status, body)
		}
		if len(body) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %+v: %d bytes", t, len(body))
		}
		out[i] = body
		h.fetched++
	}
	return out, nil
}

func (h *httpTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

type tree struct {
	size int64
	root tlog.Hash
}

func openCheckpoint(text []byte, verifiers note.Verifiers) tree {
	n, err := note.Open(text, verifiers)
	if err != nil {
		fail("checkpoint does not verify: %v\n%s", err, text)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size %q: %v", lines[1], err)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("checkpoint root %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], raw)
	return tree{size, root}
}

func leafHash(r tlog.HashReader, i int64) tlog.Hash {
	hs, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
	if err != nil {
		fail("leaf hash %d: %v", i, err)
	}
	return hs[0]
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: tlog_client <base URL> <verifier key>")
	}
	base = strings.TrimRight(os.Args[1], "/")
	v, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fail("verifier key: %v", err)
	}
	verifiers := note.VerifierList(v)
	text, status := get("/checkpoint")
	if status != http.StatusOK {
		fail("GET /checkpoint: HTTP %d", status)
	}
	latest := openCheckpoint(text, verifiers)
	if latest.size <= width {
		fail("the log has %d leaves; the check needs more than %d", latest.size, width)
	}
	tiles := &httpTiles{}
	r := tlog.TileHashReader(tlog.Tree{N: latest.size, Hash: latest.root}, tiles)
	th, err := tlog.TreeHash(latest.size, r)
	if err != nil || th != latest.root {
		fail("tree hash from tiles: %v (%v, signed %v)", err, th, latest.root)
	}

	leaves := []int64{0, 1, width - 1, width, latest.size / 2, latest.size - 1}
	for _, i := range leaves {
		p, err := tlog.ProveRecord(latest.size, i, r)
		if err != nil {
			fail("prove record %d: %v", i, err)
		}
		if err := tlog.CheckRecord(p, latest.size, latest.root, i, leafHash(r, i)); err != nil {
			fail("check record %d: %v", i, err)
		}
	}

	var older struct {
		Checkpoints []string `json:"checkpoints"`
	}
	body, status := get("/v1/checkpoints")
	if status != http.StatusOK || json.Unmarshal(body, &older) != nil {
		fail("GET /v1/checkpoints: HTTP %d", status)
	}
	trees := 0
	for _, text := range older.Checkpoints {
		old := openCheckpoint([]byte(text), verifiers)
		if old.size == 0 || old.size >= latest.size {
			continue
		}
		p, err := tlog.ProveTree(latest.size, old.size, r)
		if err != nil {
			fail("prove tree %d -> %d: %v", old.size, latest.size, err)
		}
		if err := tlog.CheckTree(p, latest.size, latest.root, old.size, old.root); err != nil {
			fail("check tree %d -> %d: %v", old.size, latest.size, err)
		}
		trees++
	}
	if trees == 0 {
		fail("no older signed checkpoint to prove consistency with")
	}

	last := (latest.size - 1) / width
	entries := 0
	for _, n := range []int64{0, last} {
		w := int(latest.size - n*width)
		if w > width {
			w = width
		}
		data, status := get(tileURL("entries", n, w))
		if status != http.StatusOK {
			fail("entry bundle %d: HTTP %d: %s", n, status, data)
		}
		for j := 0; j < w; j++ {
			if len(data) < 2 {
				fail("entry bundle %d ends after %d entries", n, j)
			}
			size := int(binary.BigEndian.Uint16(data))
			if len(data) < 2+size {
				fail("entry bundle %d: entry %d is truncated", n, j)
			}
			i := n*width + int64(j)
			if tlog.RecordHash(data[2:2+size]) != leafHash(r, i) {
				fail("entry %d: its record hash is not the leaf hash in the tiles", i)
			}
			data = data[2+size:]
			entries++
		}
		if len(data) != 0 {
			fail("entry bundle %d has %d bytes after its %d entries", n, len(data), w)
		}
	}
	if w := int(latest.size % width); w != 0 && w < width-1 {
		if _, status := get(tileURL("0", last, w+1)); status != http.StatusNotFound {
			fail("a tile beyond the signed tree was served (HTTP %d)", status)
		}
	}
	fmt.Printf("ok: tree %d, %d tiles, %d records, %d older trees, %d bundle entries\n",
		latest.size, tiles.fetched, len(leaves), trees, entries)
}
