"""Reference outputs of Pillow's bicubic Image.resize for the C# port (src/GenRecal/Data/PilResize.cs).

Run with Debian's Python and Pillow (apt-get install python3-pil):
    /usr/bin/python3 tools/reference/pil-resize/make_fixture.py tests/GenRecal.Tests/Fixtures/pil/resize.json
Seeded random RGB images, resized up, down, in one axis only and to a tile grid; every output byte is recorded.
"""
import base64, json, random, sys
import PIL
from PIL import Image

CASES = [((7, 5), (13, 11)), ((37, 23), (8, 8)), ((150, 90), (112, 56)), ((64, 64), (28, 28)),
         ((20, 33), (20, 7)), ((19, 12), (40, 12)), ((3, 200), (28, 28)), ((256, 17), (56, 56))]

def main(out):
    rng = random.Random(1234)
    cases = []
    for (w, h), (ow, oh) in CASES:
        data = bytes(rng.randrange(256) for _ in range(w * h * 3))
        img = Image.frombytes("RGB", (w, h), data)
        res = img.resize((ow, oh), Image.BICUBIC)
        cases.append({"width": w, "height": h, "out_width": ow, "out_height": oh,
                      "rgb": base64.b64encode(data).decode(), "expected": base64.b64encode(res.tobytes()).decode()})
    with open(out, "w") as f:
        json.dump({"pillow": PIL.__version__, "filter": "BICUBIC", "cases": cases}, f, indent=1)

if __name__ == "__main__":
    main(sys.argv[1])
