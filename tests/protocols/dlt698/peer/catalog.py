"""Run by the PyPI ``dlt698`` peer's own interpreter: its object catalogue as JSON.

Usage: catalog.py OI [OI ...] (hex).  Prints {oi: null | {class, name, source, attribute2}}.
"""

import json
import sys

import dlt698.standard as standard

out: dict[str, object] = {}
for text in sys.argv[1:]:
    found = standard.find_object(int(text, 16))
    if found is None:
        out[text] = None
        continue
    attribute = next((a for a in found.attributes if a.number == 2), None)
    described = None
    if attribute is not None:
        scaling = attribute.scaling
        described = {
            "type": int(attribute.type),
            "element_type": int(attribute.element_type) if attribute.element_type else None,
            "layout": attribute.layout.name,
            "scaler": scaling.scaler if scaling else None,
            "unit": scaling.unit if scaling else None,
            "record": attribute.record,
        }
    out[text] = {
        "class": found.class_id,
        "name": found.name,
        "source": found.source,
        "attribute2": described,
    }
print(json.dumps(out, ensure_ascii=False))
