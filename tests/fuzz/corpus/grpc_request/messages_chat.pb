‹
&
systemYou are a helpful assistant.

userWhat is 2+2?
'
	assistant<think>
simple
</think>

4
 
userAnd 3+3? Answer in JSON."@¨°