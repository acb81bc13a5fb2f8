"""The demo's sample app: a small customer-support assistant written against the plain
``openai`` SDK, as a user's app would be. It knows nothing of llmspend."""

from __future__ import annotations

from typing import Any

# A long, stable system prompt, as real assistants have: over 1,024 tokens, so the provider's
# prompt cache reports cached input from the second call on.
_POLICIES = [
    ("Refunds", "Customers may ask for a refund within 30 days of purchase. Check the order number, "
     "confirm the purchase date, and explain that refunds go back to the original payment method "
     "within five to seven business days. Never promise a faster refund than that."),
    ("Shipping", "Standard shipping takes three to five business days; express takes one to two. "
     "Orders placed before 2 pm ship the same day. Tracking numbers arrive by email within a day."),
    ("Accounts", "Password resets are done from the sign-in page. Never ask for a password. If a "
     "customer cannot reach their email, escalate to the account-recovery team with the ticket id."),
    ("Billing", "Invoices are issued monthly on the first business day. Customers can download them "
     "from the billing page. Disputed charges go to the billing team; do not reverse them yourself."),
    ("Tone", "Be brief, warm and precise. Use the customer's name when known. Do not use jargon. "
     "Offer one next step at the end of every answer, and never more than one."),
    ("Privacy", "Do not repeat personal data back in full: mask all but the last four digits of any "
     "card or phone number. Do not store or summarise personal data outside the ticket."),
]


def system_prompt() -> str:
    sections = []
    for round_ in range(5):
        for title, text in _POLICIES:
            sections.append(f"## {title} (part {round_ + 1})\n{text}")
    return "You are the support assistant of Example Store.\n\n" + "\n\n".join(sections)


QUESTIONS = [
    "How long does a refund take?",
    "Where is my order 1182?",
    "I forgot my password, what now?",
    "Can I get an invoice for March?",
    "My card was charged twice.",
    "Do you ship to Canada?",
    "How long does a refund take?",
    "Can I change my shipping address?",
    "Where is my order 1182?",
    "Why was my account locked?",
]


class SupportApp:
    """What a user's app looks like: it takes an ``openai`` client and calls it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.system = system_prompt()

    def answer(self, question: str, model: str = "gpt-4o-mini") -> str:
        response = self.client.chat.completions.create(
            model=model,
            temperature=0,
            max_tokens=200,
            messages=[{"role": "system", "content": self.system}, {"role": "user", "content": question}],
        )
        return str(response.choices[0].message.content)

    def chat(self, history: list[dict[str, Any]], model: str = "gpt-4o-mini") -> str:
        """One turn of a longer conversation: the whole history goes with every call."""
        response = self.client.chat.completions.create(
            model=model,
            temperature=0,
            max_tokens=200,
            messages=[{"role": "system", "content": self.system}, *history],
        )
        return str(response.choices[0].message.content)

    def answer_streaming(self, question: str, model: str = "gpt-4o") -> str:
        stream = self.client.chat.completions.create(
            model=model,
            temperature=0,
            max_tokens=200,
            stream=True,
            messages=[{"role": "system", "content": self.system}, {"role": "user", "content": question}],
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    def classify(self, question: str) -> str:
        response = self.client.chat.completions.create(
            model="gpt-4o-mini",
            temperature=0,
            response_format={"type": "json_object"},
            messages=[
                {"role": "system", "content": "Classify the ticket as JSON: {\"topic\": ...}"},
                {"role": "user", "content": question},
            ],
        )
        return str(response.choices[0].message.content)

    def summarise(self, questions: list[str]) -> str:
        response = self.client.responses.create(
            model="o4-mini",
            instructions="Summarise today's tickets for the support lead in three bullet points.",
            input="\n".join(questions),
        )
        return str(response.output_text)

    def embed(self, questions: list[str]) -> int:
        response = self.client.embeddings.create(model="text-embedding-3-small", input=questions)
        return len(response.data)
