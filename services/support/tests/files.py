"""Sample uploads for the tests: real file headers, as the gateway delivers them."""
import base64
import io
import zipfile

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200 + b"PE\x00\x00"
LOG = "Fehler 500 bei /shop/checkout – Zeitüberschreitung\n".encode()


def zip_bytes():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.php", "<?php echo 1;")
    return buf.getvalue()


def upload(filename, data, content_type="application/octet-stream", field="attachments"):
    return {"field": field, "filename": filename, "content_type": content_type,
            "content_b64": base64.b64encode(data).decode("ascii")}
