import anyio

from agentkit import tool


@tool
async def get_weather(city: str) -> str:
    """Weather that takes 30 s (to be interrupted).

    Args:
        city: City.
    """
    await anyio.sleep(30)
    return f"sunny in {city}"
