"""A Python re-implementation of llama2.c's tokenizer (run.c: encode/decode), used as the reference
for the llama2.c -> Hugging Face vocabulary conversion (server/tokenizer/llama2c_vocab.cc)."""

import struct


class Llama2cTokenizer:
    def __init__(self, path):
        data = open(path, "rb").read()
        (self.max_token_length,) = struct.unpack_from("<i", data, 0)
        pos = 4
        self.pieces, self.scores = [], []
        while pos < len(data):
            score, length = struct.unpack_from("<fi", data, pos)
            pos += 8
            self.pieces.append(data[pos:pos + length])
            self.scores.append(score)
            pos += length
        # llama2.c looks pieces up by string; the first id wins on duplicates (bsearch over a sorted
        # copy makes that unspecified; the vocabularies have none).
        self.ids = {}
        for i, p in enumerate(self.pieces):
            self.ids.setdefault(p, i)

    def encode(self, text, bos=True, eos=False):
        """Mirrors run.c encode(): dummy prefix, one token per UTF-8 character (byte fallback +3),
        then repeatedly merge the adjacent pair whose concatenation scores highest (leftmost on
        ties)."""
        raw = text.encode("utf-8")
        tokens = [1] if bos else []
        if raw:
            tokens.append(self.ids[b" "])
        i = 0
        while i < len(raw):
            j = i + 1
            while j < len(raw) and (raw[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            piece = raw[i:j]
            if piece in self.ids:
                tokens.append(self.ids[piece])
            else:
                tokens.extend(b + 3 for b in piece)
            i = j
        while True:
            best_score, best_id, best_idx = -1e10, -1, -1
            for k in range(len(tokens) - 1):
                merged = self.pieces[tokens[k]] + self.pieces[tokens[k + 1]]
                mid = self.ids.get(merged)
                if mid is not None and self.scores[mid] > best_score:
                    best_score, best_id, best_idx = self.scores[mid], mid, k
            if best_idx == -1:
                break
            tokens[best_idx:best_idx + 2] = [best_id]
        if eos:
            tokens.append(2)
        return tokens

    def decode_piece(self, prev, token):
        """run.c decode(): strips the leading space after BOS and maps <0xNN> to a byte."""
        piece = self.pieces[token]
        if prev == 1 and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            return bytes([int(piece[3:5], 16)])
        return piece
