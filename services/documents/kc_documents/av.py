"""The signed data-processing agreement (AV, Art. 28 DS-GVO) as PDF, from identity's event."""


def paragraphs(text):
    blocks = [" ".join(b.split()) for b in (text or "").replace("\r\n", "\n").split("\n\n")]
    return [b for b in blocks if b]


def render_av(agreement, provider):
    """Worker-process function: the agreement with the signer's details as PDF/A-3b."""
    from kc_documents.rendering import render_pdf
    return render_pdf("av_agreement.html", pdf_variant="pdf/a-3b", seller=provider, a=agreement,
                      c=agreement.get("customer") or {}, paragraphs=paragraphs(agreement.get("text")))
